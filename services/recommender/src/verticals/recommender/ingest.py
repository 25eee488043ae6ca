"""Catalog and event files (CSV, JSONL, Parquet via the core's ``read_table``) to validated
models; every problem names the file and the row, and one bad row rejects the file."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from verticals.core.data import DataError, read_table
from verticals.recommender.schemas import EventIn, ItemIn

DEFAULT_MAX_SKEW_S = 300.0
"""The recommender's default ``max_event_skew_s``."""
ITEM_COLUMNS = {"id", "title", "description", "category", "tags", "price", "in_stock", "attributes"}
MAX_ERRORS = 10


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _tags(value: Any) -> list[str]:
    if _blank(value):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return [str(t) for t in json.loads(text)]
        return [t.strip() for t in text.split("|") if t.strip()]
    return [str(t) for t in value]


def _bool(value: Any) -> bool:
    if _blank(value):
        return True
    if isinstance(value, str):
        if value.strip().lower() in {"true", "1", "yes", "y"}:
            return True
        if value.strip().lower() in {"false", "0", "no", "n"}:
            return False
        raise ValueError(f"in_stock: expected true/false, got {value!r}")
    return bool(value)


def _attributes(value: Any) -> dict[str, Any]:
    if _blank(value):
        return {}
    if isinstance(value, str):
        parsed = json.loads(value)
        if not isinstance(parsed, dict):
            raise ValueError("attributes: expected a JSON object")
        return parsed
    return dict(value)


def _raise(path: Path, errors: list[str]) -> None:
    if errors:
        more = f"\n  ... and {len(errors) - MAX_ERRORS} more" if len(errors) > MAX_ERRORS else ""
        raise DataError(f"{path}:\n  " + "\n  ".join(errors[:MAX_ERRORS]) + more)


def read_items(path: str | Path) -> list[ItemIn]:
    path = Path(path)
    frame = read_table(path)
    missing = [c for c in ("id", "title") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    extra = [c for c in frame.columns if c not in ITEM_COLUMNS]
    items, errors = [], []
    for number, record in enumerate(frame.to_dict("records"), start=1):
        try:
            attributes = _attributes(record.get("attributes"))
            attributes.update({c: record[c] for c in extra if not _blank(record[c])})
            price = record.get("price")
            items.append(
                ItemIn(
                    id=str(record["id"]).strip(),
                    title=str(record["title"]).strip(),
                    description=""
                    if _blank(record.get("description"))
                    else str(record["description"]),
                    category="" if _blank(record.get("category")) else str(record["category"]),
                    tags=_tags(record.get("tags")),
                    price=None if _blank(price) else float(price),
                    in_stock=_bool(record.get("in_stock")),
                    attributes=attributes,
                )
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            errors.append(f"row {number}: {problems}")
        except (ValueError, TypeError) as exc:
            errors.append(f"row {number}: {exc}")
    dupes = [i for i, n in Counter(it.id for it in items).items() if n > 1]
    if dupes:
        errors.append(f"duplicate id(s): {', '.join(dupes[:10])}")
    _raise(path, errors)
    return items


def read_events(path: str | Path, max_skew_s: float = DEFAULT_MAX_SKEW_S) -> list[EventIn]:
    """Every row checked first: one more than ``max_skew_s`` in the future is an error too
    (the engine would refuse its batch after earlier batches were stored)."""
    path = Path(path)
    latest = time.time() + max_skew_s
    frame = read_table(path)
    missing = [c for c in ("user_id", "item_id", "type") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    events, errors = [], []
    for number, record in enumerate(frame.to_dict("records"), start=1):
        ts = record.get("timestamp")
        try:
            events.append(
                EventIn(
                    user_id=str(record["user_id"]),
                    item_id=str(record["item_id"]),
                    type=record["type"],
                    timestamp=None if _blank(ts) else ts,
                )
            )
            when = events[-1].timestamp
            if when is not None and when.timestamp() > latest:
                errors.append(f"row {number}: timestamp {when.isoformat()} is in the future")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            errors.append(f"row {number}: {problems}")
    _raise(path, errors)
    return events
