from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from verticals.core.registry import ModelRegistry
from verticals.recommender.finetune import build_pairs, finetune_from_log, gate, log_as_interactions
from verticals.recommender.generate import generate_catalog
from verticals.recommender.schemas import EventIn, ItemIn

ITEMS = 200
USERS = 400


def _sequential_events(catalog: list[ItemIn], users: int, starts: int = 10) -> list[EventIn]:
    """Users walk item chains (i -> i+10 -> i+20 ...): a signal the text alone does not carry."""
    rng = random.Random(0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    for u in range(users):
        first = rng.randrange(starts)
        for step in range(5):
            item = catalog[(first + 10 * step) % len(catalog)]
            ts = start + timedelta(minutes=u * 10 + step)
            events.append(EventIn(user_id=f"u{u}", item_id=item.id, type="click", timestamp=ts))
    return events


def test_pairs_and_gate_from_the_log(make_engine: Any, catalog: list[ItemIn]) -> None:
    engine = make_engine()
    engine.upsert_items(catalog)
    engine.ingest_events(_sequential_events(catalog, 30))
    data, keys = log_as_interactions(engine.settings)
    assert len(keys) == len(catalog) and len(data.test) == 30
    pairs = build_pairs(data, set(data.test.values()), window=3, max_pairs=100)
    assert 20 < len(pairs) <= 100 and all(q != p for q, p in pairs)
    assert max(Counter(q for q, _ in pairs).values()) <= 2
    assert max(Counter(p for _, p in pairs).values()) <= 2
    assert build_pairs(data, set(range(len(data.events))), window=3, max_pairs=100) == []
    assert gate({"hr@10": 0.1, "ndcg@10": 0.05}, {"hr@10": 0.1, "ndcg@10": 0.06})
    assert not gate({"hr@10": 0.1, "ndcg@10": 0.05}, {"hr@10": 0.12, "ndcg@10": 0.04})
    assert not gate({"hr@10": 0.1, "ndcg@10": 0.05}, {"hr@10": 0.1, "ndcg@10": 0.05})


def _shuffled(build: Callable[..., list[tuple[str, str]]]) -> Callable[..., list[tuple[str, str]]]:
    """``build_pairs`` with the positives shuffled across queries: the same texts, no signal."""

    def build_shuffled(*args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        pairs = build(*args, **kwargs)
        positives = [p for _, p in pairs]
        random.Random(1).shuffle(positives)
        return [(q, p) for (q, _), p in zip(pairs, positives, strict=True)]

    return build_shuffled


def _chain_log(make_engine: Any) -> Any:
    """An engine whose log is 400 users walking item chains over 200 generated items, served
    text-only, so that co-visits and popularity cannot mask what the encoder does."""
    from verticals.recommender.settings import ScorerWeights

    catalog = [ItemIn(**item) for item in generate_catalog(ITEMS, seed=5)]
    engine = make_engine(variant_a=ScorerWeights(text=1.0, popularity=0.0, cooccurrence=0.0))
    engine.upsert_items(catalog)
    events = _sequential_events(catalog, USERS, starts=len(catalog))
    for at in range(0, len(events), 1000):  # the engine's batch limit
        engine.ingest_events(events[at : at + 1000])
    return engine


@pytest.mark.slow
def test_finetune_refuses_an_encoder_trained_on_shuffled_pairs(
    make_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offline gate on the service's own event log: an encoder trained on the log's pairs
    with the positives shuffled ranks the held-out items worse and is not promoted."""
    from verticals.recommender import finetune

    engine = _chain_log(make_engine)
    registry = ModelRegistry(tmp_path / "registry")
    task = engine.settings.encoder_task
    monkeypatch.setattr(finetune, "build_pairs", _shuffled(finetune.build_pairs))
    refused = finetune_from_log(engine.settings, **_options(registry))
    assert refused["promoted"] is False, refused
    assert refused["after"]["hr@10"] < refused["before"]["hr@10"], refused  # 0.105 -> 0.0975
    assert registry.current_version(task) is None
    card = registry.card(task, refused["version"])
    assert card["kind"] == "embedding" and card["gate"]["current"] == refused["before"]
    assert card["gate"]["promoted"] is False


def _options(registry: ModelRegistry) -> dict[str, Any]:
    return {"max_pairs": 400, "epochs": 1, "registry": registry, "log": print}
