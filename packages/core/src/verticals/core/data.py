"""Labelled text from CSV, JSONL or Parquet: loading, validation, splitting, fingerprints.

Every validation error names the file, the data row (1-based, header excluded) and the problem.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from verticals.core.config import HeadConfig

MAX_REPORTED_ERRORS = 10
MISSING = -1
"""Target of a multi-class head for a row that has no label for it (``allow_missing``)."""


class DataError(ValueError):
    """Input data that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Head:
    """A label head: its name, its ordered labels and whether a text may carry several."""

    name: str
    labels: tuple[str, ...]
    multi_label: bool = False

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "labels": list(self.labels), "multi_label": self.multi_label}

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> Head:
        labels = raw["labels"]
        assert isinstance(labels, list)
        return cls(str(raw["name"]), tuple(str(x) for x in labels), bool(raw["multi_label"]))


@dataclass
class LabelledTexts:
    """Texts with, per head, one label index (multi-class) or a list of them (multi-label)."""

    texts: list[str]
    targets: dict[str, list] = field(default_factory=dict)
    heads: list[Head] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> LabelledTexts:
        return LabelledTexts(
            [self.texts[i] for i in indices],
            {name: [vals[i] for i in indices] for name, vals in self.targets.items()},
            self.heads,
        )

    def fingerprint(self) -> str:
        return fingerprint_rows(zip(self.texts, *self.targets.values(), strict=True))

    def to_records(self) -> list[dict[str, object]]:
        """Rows with label names, as written to a model's stored test split."""
        rows = []
        for i, text in enumerate(self.texts):
            row: dict[str, object] = {"text": text}
            for head in self.heads:
                value = self.targets[head.name][i]
                if head.multi_label:
                    row[head.name] = [head.labels[j] for j in value]
                else:
                    row[head.name] = head.labels[value] if value != MISSING else ""
            rows.append(row)
        return rows


@dataclass
class TextPairs:
    """(query, positive) pairs for contrastive embedding training."""

    queries: list[str]
    positives: list[str]

    def __len__(self) -> int:
        return len(self.queries)

    def subset(self, indices: Sequence[int]) -> TextPairs:
        return TextPairs([self.queries[i] for i in indices], [self.positives[i] for i in indices])

    def fingerprint(self) -> str:
        return fingerprint_rows(zip(self.queries, self.positives, strict=True))

    def to_records(self) -> list[dict[str, object]]:
        return [
            {"query": q, "positive": p} for q, p in zip(self.queries, self.positives, strict=True)
        ]


def fingerprint_rows(rows: object) -> str:
    digest = hashlib.sha256()
    for row in rows:  # type: ignore[attr-defined]
        digest.update(json.dumps(row, ensure_ascii=False, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


Records = Sequence[Mapping[str, object]]
"""Rows held in memory (column -> value): the same data as a file, without writing one."""
Source = str | Path | Records


def source_name(source: Source) -> Path:
    """How errors name a source: the file, or ``records`` for rows held in memory."""
    return Path(source) if isinstance(source, str | Path) else Path("records")


def write_table(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """Write ``rows`` under ``header`` as a UTF-8 CSV (what ``read_table`` reads back)."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_table(source: Source, encoding: str = "utf-8") -> pd.DataFrame:
    """Read CSV, JSONL/JSON or Parquet by suffix, or rows held in memory (cells as text); an
    unreadable or empty source is a DataError."""
    if not isinstance(source, str | Path):
        if not source:
            raise DataError("records: no data rows")
        return pd.DataFrame.from_records(list(source))
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in {".csv", ".tsv"}:
            frame = pd.read_csv(
                path,
                sep="\t" if suffix == ".tsv" else ",",
                encoding=encoding,
                dtype=str,
                keep_default_na=False,
            )
        elif suffix in {".jsonl", ".ndjson", ".json"}:
            frame = _read_json_lines(path, encoding)
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            raise DataError(f"{path}: unsupported format '{suffix}' (use .csv, .jsonl or .parquet)")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: bad encoding: byte {exc.start} is not valid {encoding} "
            f"(set data.encoding, e.g. latin-1)"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: empty file") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: not valid CSV: {exc}") from exc
    if frame.empty:
        raise DataError(f"{path}: empty file (no data rows)")
    return frame


def _read_json_lines(path: Path, encoding: str) -> pd.DataFrame:
    with path.open(encoding=encoding) as handle:
        return pd.DataFrame.from_records(parse_json_lines(handle, str(path)))


def parse_json_lines(lines: Iterable[str], where: str) -> list[dict[str, Any]]:
    """JSON objects, one per non-blank line; errors name ``where`` and the line."""
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: line {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise DataError(f"{where}: line {number}: expected a JSON object")
        records.append(record)
    return records


def _require_columns(frame: pd.DataFrame, path: Path, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; "
            f"the file has {', '.join(map(repr, frame.columns))} (map them in the config)"
        )


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, list | tuple | np.ndarray):
        return "|".join(str(v) for v in value)
    return str(value).strip()


def _raise_collected(path: Path, errors: list[str]) -> None:
    if errors:
        shown = "\n  ".join(errors[:MAX_REPORTED_ERRORS])
        more = len(errors) - MAX_REPORTED_ERRORS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise DataError(f"{path}: {len(errors)} invalid row(s):\n  {shown}{tail}")


def load_labelled(
    source: Source,
    text_column: str,
    heads: Mapping[str, HeadConfig],
    encoding: str = "utf-8",
    fixed_heads: Sequence[Head] | None = None,
) -> LabelledTexts:
    """Load texts and labels; ``fixed_heads`` (a trained model's) forbids labels it lacks."""
    path = source_name(source)
    frame = read_table(source, encoding)
    _require_columns(frame, path, [text_column, *(h.column for h in heads.values())])
    known = {h.name: h for h in fixed_heads or []}
    errors: list[str] = []
    texts = [_cell(v) for v in frame[text_column].tolist()]
    for row, text in enumerate(texts, start=1):
        if not text:
            errors.append(f"row {row}: missing text in column '{text_column}'")
    resolved: list[Head] = []
    raw_labels: dict[str, list[list[str]]] = {}
    for name, spec in heads.items():
        cells = [_cell(v) for v in frame[spec.column].tolist()]
        split = [
            [p.strip() for p in c.split(spec.label_separator) if p.strip()]
            if spec.multi_label
            else ([c] if c else [])
            for c in cells
        ]
        raw_labels[name] = split
        allowed = known[name].labels if name in known else spec.labels
        if allowed is None:
            allowed = sorted({label for labels in split for label in labels})
        allowed_set = set(allowed)
        for row, labels in enumerate(split, start=1):
            if not labels and not spec.multi_label and not spec.allow_missing:
                errors.append(f"row {row}: missing label in column '{spec.column}'")
            for label in labels:
                if label not in allowed_set:
                    errors.append(
                        f"row {row}: unknown label {label!r} for head '{name}' "
                        f"(expected one of {', '.join(allowed)})"
                    )
        resolved.append(Head(name, tuple(allowed), spec.multi_label))
    _raise_collected(path, errors)
    targets: dict[str, list] = {}
    for head in resolved:
        index = {label: i for i, label in enumerate(head.labels)}
        split = raw_labels[head.name]
        targets[head.name] = (
            [sorted(index[x] for x in labels) for labels in split]
            if head.multi_label
            else [index[labels[0]] if labels else MISSING for labels in split]
        )
    return LabelledTexts(texts, targets, resolved)


def load_pairs(
    source: Source, query_column: str, positive_column: str, encoding: str = "utf-8"
) -> TextPairs:
    """Load (query, positive) pairs from a file or records; empty cells are errors naming the
    row."""
    path = source_name(source)
    frame = read_table(source, encoding)
    _require_columns(frame, path, [query_column, positive_column])
    queries = [_cell(v) for v in frame[query_column].tolist()]
    positives = [_cell(v) for v in frame[positive_column].tolist()]
    errors = [
        f"row {row}: missing {column}"
        for row, (q, p) in enumerate(zip(queries, positives, strict=True), start=1)
        for column, value in ((query_column, q), (positive_column, p))
        if not value
    ]
    _raise_collected(path, errors)
    return TextPairs(queries, positives)


@dataclass(frozen=True)
class Split:
    train: list[int]
    validation: list[int]
    test: list[int]


def split_indices(
    n: int,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    strata: Sequence[object] | None = None,
) -> Split:
    """Seeded train/validation/test split, stratified on ``strata`` where every class allows."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(n)

    def _cut(idx: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
        if fraction <= 0 or len(idx) < 2:
            return idx, idx[:0]
        labels = None
        if strata is not None:
            labels = np.array([str(strata[i]) for i in idx])
            _, counts = np.unique(labels, return_counts=True)
            n_held = max(1, round(len(idx) * fraction))
            if counts.min() < 2 or n_held < len(counts):
                labels = None  # too few per class to stratify: fall back to a random split
        keep, held = train_test_split(
            idx, test_size=fraction, random_state=seed, stratify=labels, shuffle=True
        )
        return np.sort(keep), np.sort(held)

    rest, test = _cut(indices, test_fraction)
    adjusted = validation_fraction / (1 - test_fraction) if test_fraction < 1 else 0.0
    train, validation = _cut(rest, adjusted)
    return Split(train.tolist(), validation.tolist(), test.tolist())


def stratified_subset(n: int, size: int, seed: int, strata: Sequence[object] | None) -> list[int]:
    """A seeded subset of ``size`` rows keeping class proportions."""
    if size >= n:
        return list(range(n))
    split = split_indices(n, 0.0, 1 - size / n, seed, strata)
    return split.train
