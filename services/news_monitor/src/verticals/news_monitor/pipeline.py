"""Domain logic of one batch: decode and validate, classify in one pass, enrich (no Kafka here);
and the model it classifies with (the registry's current one, the shipped default imported)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from pydantic import ValidationError

from verticals.news_monitor.alerts import Observation, keys_for
from verticals.news_monitor.schemas import NewsItem
from verticals.news_monitor.settings import NewsSettings

if TYPE_CHECKING:
    from verticals.core.inference import Form
    from verticals.core.registry import ModelRegistry

log = logging.getLogger("verticals.news_monitor")

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
    # rounded and argmaxed per head for the whole batch (numpy), then read row by row
    best = {name: probs[name].argmax(axis=1).tolist() for name in ("sentiment", "topic")}
    rounded = {n: np.round(probs[n].astype(np.float64), 4).tolist() for n in ("sentiment", "topic")}
    negative_probability = probs["sentiment"][:, neg_index].tolist()
    for row, item in enumerate(items):
        heads: dict[str, dict[str, Any]] = {}
        for name in ("sentiment", "topic"):
            values = rounded[name][row]
            heads[name] = {
                "label": labels[name][best[name][row]],
                "score": values[best[name][row]],
                "probabilities": dict(zip(labels[name], values, strict=True)),
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
                negative_probability=negative_probability[row],
                title=item.title,
                source=sources[row] if sources else "",
            )
        )
    return records, observations


def load_model(settings: NewsSettings, registry: ModelRegistry | None = None) -> Any:
    """The task's current model in ``registry`` (default: the configured one); the shipped
    default is imported into it first."""
    from verticals.core.inference import Predictor
    from verticals.core.registry import ModelRegistry

    registry = registry or ModelRegistry.default()
    if (settings.model_dir / "card.json").exists():
        ensure_shipped(registry, settings.model_dir)
    form = model_form(settings.model_form, registry.card(settings.model_task))
    log.info("news model %s in form %s", registry.current_version(settings.model_task), form)
    return Predictor.from_registry(
        settings.model_task, registry=registry, batch_size=settings.model_batch, form=form
    )


def ensure_shipped(registry: ModelRegistry, model_dir: Path) -> int:
    """Import the shipped default when the task has no model, and again when the checkout ships
    a newer default than the current version, as long as that current version is itself an
    imported default (a model the user trained and promoted is never replaced). The task is
    the shipped card's."""
    shipped = json.loads((model_dir / "card.json").read_text())
    task = shipped["task"]
    current = registry.current_version(task)
    if current is None:
        return registry.ensure(model_dir)
    card = registry.card(task)
    known = {c.get("created_at") for c in registry.cards(task)}
    if not card.get("imported_from") or shipped.get("created_at") in known:
        return current
    version = registry.import_version(model_dir, first_becomes_current=False)
    registry.promote(task, version, force=True)
    log.info("news model: the shipped default replaced v%s by v%s", current, version)
    return version


INT8_MAX_LOSS_POINTS = 1.0


def model_form(setting: str, card: dict[str, Any]) -> Form:
    """The core's form for a setting; ``auto`` trusts the card's real-data measurement of the
    int8 form (``bench/news_model.py --record``) and falls back to fp32 without one."""
    if setting == "auto":
        loss = card.get("real_eval", {}).get("int8_macro_f1_loss_points")
        setting = "int8" if loss is not None and loss < INT8_MAX_LOSS_POINTS else "fp32"
    return "onnx-int8" if setting == "int8" else "torch"
