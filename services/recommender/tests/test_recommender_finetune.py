from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from verticals.core.registry import ModelRegistry
from verticals.recommender.finetune import build_pairs, finetune_from_log, gate, log_as_interactions
from verticals.recommender.schemas import EventIn, ItemIn


def _sequential_events(catalog: list[ItemIn], users: int) -> list[EventIn]:
    """Users walk item chains (i -> i+10 -> i+20 ...): a signal the text alone does not carry."""
    rng = random.Random(0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    for u in range(users):
        first = rng.randrange(10)
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


@pytest.mark.slow
def test_finetune_registers_and_gates(
    make_engine: Any, catalog: list[ItemIn], tmp_path: Path
) -> None:
    engine = make_engine()
    engine.upsert_items(catalog)
    engine.ingest_events(_sequential_events(catalog, 60))
    registry = ModelRegistry(tmp_path / "registry")
    result = finetune_from_log(
        engine.settings, max_pairs=300, registry=registry, log=lambda m: None
    )
    card = registry.card(engine.settings.encoder_task, result["version"])
    assert card["kind"] == "embedding" and card["offline"]["before"] == result["before"]
    assert card["current"] == result["promoted"] == gate(result["before"], result["after"])
