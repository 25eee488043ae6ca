"""Domain logic of one batch: decode and validate, classify in one pass, enrich (no Kafka here)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from pydantic import ValidationError

from verticals.news_monitor.alerts import Observation, keys_for
from verticals.news_monitor.schemas import NewsItem

MAX_TEXT_CHARS = 2000


class Classifier(Protocol):
    """What the pipeline needs of ``verticals.core.inference.Predictor``."""

    heads: Any
    version: str

    def predict_proba(self, texts: list[str]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class Rejected:
    """A message that cannot be processed, with the reason for the dead-letter headers."""

    error: str
    reason: str


def decode(value: bytes | None) -> NewsItem | Rejected:
    """Bytes -> a validated item, or why not (never raises)."""
    if value is None:
        return Rejected("empty", "message has no value (tombstone)")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected("undecodable", f"not UTF-8: {exc}")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return Rejected("invalid_json", f"not JSON: {exc.msg} at char {exc.pos}")
    if not isinstance(raw, dict):
        return Rejected("invalid_item", f"expected a JSON object, got {type(raw).__name__}")
    try:
        return NewsItem.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(item)'}: {e['msg']}" for e in exc.errors()
        )
        return Rejected("invalid_item", problems[:900])


def text_of(item: NewsItem) -> str:
    """What the model reads: the title (headline models are trained on headlines)."""
    return item.title[:MAX_TEXT_CHARS]


def classify(
    items: list[NewsItem], model: Classifier, sources: list[str] | None = None
) -> tuple[list[dict[str, Any]], list[Observation]]:
    """One batched forward pass for all items; returns enriched records and observations
    (``sources``: each item's topic/partition, for per-partition watermarks)."""
    if not items:
        return [], []
    probs = model.predict_proba([text_of(i) for i in items])
    labels = {h.name: list(h.labels) for h in model.heads}
    now = datetime.now(UTC)
    records: list[dict[str, Any]] = []
    observations: list[Observation] = []
    neg_index = labels["sentiment"].index("negative")
    for row, item in enumerate(items):
        heads: dict[str, dict[str, Any]] = {}
        for name in ("sentiment", "topic"):
            p = probs[name][row]
            best = int(p.argmax())
            heads[name] = {
                "label": labels[name][best],
                "score": round(float(p[best]), 4),
                "probabilities": {
                    lab: round(float(v), 4) for lab, v in zip(labels[name], p, strict=True)
                },
            }
        record = item.model_dump(mode="json")
        record.update(heads)
        record["model_version"] = model.version
        record["classified_at"] = now.isoformat()
        records.append(record)
        observations.append(
            Observation(
                id=item.id,
                event_ts=item.published_at.timestamp(),
                keys=keys_for(heads["topic"]["label"], item.tickers, item.entities),
                negative=heads["sentiment"]["label"] == "negative",
                negative_probability=float(probs["sentiment"][row][neg_index]),
                title=item.title,
                source=sources[row] if sources else "",
            )
        )
    return records, observations
