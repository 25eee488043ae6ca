"""Text helpers without I/O: PII redaction, FAQ file parsing, document splitting."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser

from verticals.core.data import DataError, parse_json_lines

DASHES = (
    "\\-\u058a\u05be\u1400\u1806\u2010-\u2015\u2e17\u2e1a\u2e3a\u2e3b\u2e40\u2e5d\u301c\u3030"
    "\u30a0\ufe31\ufe32\ufe58\ufe63\uff0d\U00010ead\u2212"
)
"""Every Unicode dash (category Pd) and the minus sign, as a character-class body."""
SEPARATORS = rf"\s{DASHES}.\uff0e\u00ad\u200b-\u200d\u2060\ufeff"
"""What may stand between the digits of a card or phone number: any Unicode space (``\\s``:
no-break, thin, narrow no-break, figure, ideographic ...), any dash, dots and the invisible
soft hyphen, zero-width spaces and joiners."""
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+[@\uff20][\w-]+(?:\.[\w-]+)+")  # one try per run
CARD = re.compile(rf"(?<!\d)(?:\d[{SEPARATORS}]{{0,3}}){{12,18}}\d(?!\d)")
PHONE = re.compile(rf"(?<![\w])[+\uff0b]?\d[\d()/{SEPARATORS}]{{6,}}\d(?!\d)")
ENTRY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:#-]{0,127}$")
META_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
META_MAX_KEYS = 20
META_MAX_VALUE = 200
RESERVED_KEYS = ("category", "tags", "kind")
"""Filterable like metadata keys, but set by the entry's own fields."""


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def redact(text: str) -> str:
    """Replace e-mail addresses, card numbers (Luhn-valid) and phone numbers, whatever Unicode
    spaces, dashes or digits they are written with."""

    def card(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        return "[card]" if _luhn(digits) else match.group()

    text = EMAIL.sub("[email]", text)
    text = CARD.sub(card, text)

    def phone(match: re.Match[str]) -> str:
        return "[phone]" if len(re.sub(r"\D", "", match.group())) >= 7 else match.group()

    return PHONE.sub(phone, text)


class InputError(ValueError):
    """Rejected input; the message says what is wrong (mapped to a 4xx)."""


@dataclass
class EntryIn:
    """One knowledge-base entry: an FAQ or a document passage."""

    id: str
    title: str
    body: str
    kind: str = "faq"
    heading: str = ""
    category: str = ""
    tags: list[str] = field(default_factory=list)
    url: str = ""
    source: str = ""
    paraphrases: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    """Any key/value (product, language, document type ...): stored, returned, filterable."""

    def facets(self) -> dict[str, object]:
        """What a search filter matches: the metadata, the category, the kind and each tag."""
        return {**self.metadata, "category": self.category, "kind": self.kind, "tags": self.tags}

    def short_text(self) -> str | None:
        """An FAQ's question alone (paraphrased queries match it best); None for passages."""
        return self.title if self.kind == "faq" else None

    def index_text(self) -> str:
        """What both retrievers see."""
        head = " / ".join(p for p in (self.title, self.heading) if p)
        return f"{head}\n{self.body}"


def fingerprint(entries: Mapping[int, EntryIn]) -> str:
    """A digest of a tenant's entries (primary keys and content): the same on every replica
    reading the same database, so a saved index is reused only while it still matches."""
    digest = hashlib.sha256()
    for pk in sorted(entries):
        row = json.dumps([pk, asdict(entries[pk])], ensure_ascii=False, sort_keys=True)
        digest.update(row.encode())
    return digest.hexdigest()


def check_metadata(value: object, where: str = "metadata") -> dict[str, str]:
    """Entry metadata: an object of at most 20 string values under keys of letters, digits and
    ``_ . -``; ``category``, ``tags`` and ``kind`` are the entry's own fields."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not a JSON object ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise InputError(f"{where}: must be an object of string values")
    if len(value) > META_MAX_KEYS:
        raise InputError(f"{where}: over {META_MAX_KEYS} keys")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not META_KEY.match(key):
            raise InputError(f"{where}: bad key {key!r} (1-64 letters, digits, _ . -)")
        if key in RESERVED_KEYS:
            raise InputError(f"{where}: {key!r} is set by the entry's own {key} field")
        if not isinstance(item, str) or len(item) > META_MAX_VALUE:
            raise InputError(f"{where}: {key!r} must be a string of at most {META_MAX_VALUE}")
        out[key] = item
    return out


def _listish(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split("|") if v.strip()]


def faq_from_records(records: list[dict[str, object]], where: str, max_chars: int) -> list[EntryIn]:
    """Validate FAQ records; every problem is collected and raised together."""
    errors: list[str] = []
    entries: list[EntryIn] = []
    seen: set[str] = set()
    for n, rec in enumerate(records, start=1):
        ident = str(rec.get("id") or "").strip()
        question = str(rec.get("question") or "").strip()
        answer = str(rec.get("answer") or "").strip()
        problems = []
        if not ENTRY_ID.match(ident):
            problems.append(f"bad or missing id {ident!r} (letters, digits, _ . : # -)")
        if not question:
            problems.append("missing question")
        if not answer:
            problems.append("missing answer")
        if len(question) + len(answer) > max_chars:
            problems.append(f"question+answer over {max_chars} characters")
        if ident in seen:
            problems.append(f"duplicate id {ident!r}")
        seen.add(ident)
        metadata: dict[str, str] = {}
        try:
            metadata = check_metadata(rec.get("metadata"))
        except InputError as exc:
            problems.append(str(exc))
        if problems:
            errors.append(f"{where} row {n}: " + ", ".join(problems))
            continue
        entries.append(
            EntryIn(
                id=ident,
                title=question,
                body=answer,
                category=str(rec.get("category") or "").strip(),
                tags=_listish(rec.get("tags")),
                url=str(rec.get("url") or "").strip(),
                paraphrases=_listish(rec.get("paraphrases")),
                source=where,
                metadata=metadata,
            )
        )
    if errors:
        shown = "; ".join(errors[:10]) + (
            f"; ... {len(errors) - 10} more" if len(errors) > 10 else ""
        )
        raise InputError(f"{len(errors)} invalid FAQ row(s): {shown}")
    if not entries:
        raise InputError(f"{where}: no FAQ entries")
    return entries


def parse_faq(content: str, fmt: str, where: str, max_chars: int) -> list[EntryIn]:
    """Parse a CSV (header: id, question, answer[, category, tags, url, paraphrases,
    metadata (a JSON object)]) or JSONL."""
    records: list[dict[str, object]] = []
    if fmt == "csv":
        try:
            reader = csv.DictReader(io.StringIO(content), strict=True)
            header = reader.fieldnames or []
            missing = [c for c in ("id", "question", "answer") if c not in header]
            if missing:
                raise InputError(
                    f"{where}: CSV header lacks {', '.join(missing)} "
                    f"(has {', '.join(header) or 'none'})"
                )
            for n, row in enumerate(reader, start=1):
                if None in row or any(v is None for v in row.values()):
                    raise InputError(f"{where} row {n}: wrong number of fields")
                records.append(dict(row))
        except csv.Error as exc:
            raise InputError(f"{where}: not valid CSV: {exc}") from exc
    elif fmt == "jsonl":
        try:
            records = parse_json_lines(content.splitlines(), where)
        except DataError as exc:
            raise InputError(str(exc)) from exc
    else:
        raise InputError(f"unsupported FAQ format {fmt!r} (use csv or jsonl)")
    return faq_from_records(records, where, max_chars)


class _HtmlSections(HTMLParser):
    """Collect (tag, text) blocks: headings h1-h4 and paragraph-like text."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[tuple[str, str]] = []
        self._tag = ""
        self._buf: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self._skip += 1
        if tag in {"h1", "h2", "h3", "h4", "p", "li", "title", "td", "pre"}:
            self._flush()
            self._tag = tag

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"}:
            self._skip = max(0, self._skip - 1)
        if tag == self._tag:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._buf.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._buf).split())
        if text:
            self.blocks.append((self._tag or "p", text))
        self._buf = []
        self._tag = ""


def _markdown_to_lines(content: str) -> list[tuple[int, str]]:
    """(heading level or 0, text) per logical line; paragraphs joined."""
    out: list[tuple[int, str]] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append((0, " ".join(para)))
            para.clear()

    for raw in content.splitlines():
        line = raw.strip()
        match = re.match(r"^(#{1,6})\s+(.*)$", line)
        if match:
            flush()
            out.append((len(match.group(1)), match.group(2).strip().strip("#").strip()))
        elif not line:
            flush()
        else:
            para.append(line)
    flush()
    return out


def split_document(
    doc_id: str,
    content: str,
    fmt: str,
    title: str = "",
    url: str = "",
    max_words: int = 120,
    category: str = "",
    metadata: dict[str, str] | None = None,
) -> list[EntryIn]:
    """Split Markdown, HTML or text into passages (``<doc_id>#<n>``) under their headings."""
    if not ENTRY_ID.match(doc_id) or "#" in doc_id:
        raise InputError(f"bad document id {doc_id!r} (letters, digits, _ . : -)")
    lines: list[tuple[int, str]]
    if fmt == "markdown":
        lines = _markdown_to_lines(content)
    elif fmt == "html":
        parser = _HtmlSections()
        parser.feed(content)
        parser.close()
        parser._flush()
        levels = {"title": 1, "h1": 1, "h2": 2, "h3": 3, "h4": 4}
        lines = [(levels.get(tag, 0), text) for tag, text in parser.blocks]
        if lines and lines[0][0] == 1 and len(lines) > 1 and lines[1] == lines[0]:
            lines = lines[1:]  # <title> repeated as <h1>
    elif fmt == "text":
        lines = [(0, " ".join(p.split())) for p in re.split(r"\n\s*\n", content) if p.strip()]
    else:
        raise InputError(f"unsupported document format {fmt!r} (use markdown, html or text)")
    if not title:
        title = next((t for lvl, t in lines if lvl == 1), doc_id)
    passages: list[EntryIn] = []
    heading_path: list[str] = []
    words: list[str] = []

    def emit() -> None:
        if words:
            passages.append(
                EntryIn(
                    id=f"{doc_id}#{len(passages) + 1}",
                    title=title,
                    heading=" > ".join(h for h in heading_path if h and h != title),
                    body=" ".join(words),
                    kind="passage",
                    url=url,
                    source=doc_id,
                    category=category,
                    metadata=dict(metadata or {}),
                )
            )
            words.clear()

    for level, text in lines:
        if level:
            emit()
            heading_path[level - 1 :] = [text]
            continue
        for word in text.split():
            words.append(word)
            if len(words) >= max_words:
                emit()
        if len(words) >= max_words * 0.6:
            emit()
    emit()
    if not passages:
        raise InputError(f"document {doc_id!r} has no text")
    return passages
