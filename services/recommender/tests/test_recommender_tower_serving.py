"""The tower's serving path ranks exactly as a straightforward reference computation does: its
candidates (the tower index's nearest; popular and co-occurring items when the filters leave
fewer than k), the blend of the four signals over them, the filters and the seen filter, top-k
by score then key, whatever it caches per user between events and catalog changes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from verticals.recommender.catalog import Filters
from verticals.recommender.schemas import EventIn, ItemIn

START = datetime(2026, 1, 1, tzinfo=UTC)
N_CANDIDATES = 8
"""Far fewer than the 80 items, so which candidates each source brings matters."""


def _events(catalog: list[ItemIn], users: int, seed: int, start: float = 0.0) -> list[EventIn]:
    rng = random.Random(seed)
    kinds = ["view", "view", "click", "add_to_cart", "purchase"]
    return [
        EventIn(
            user_id=f"u{rng.randrange(users)}",
            item_id=catalog[rng.randrange(len(catalog))].id,
            type=rng.choice(kinds),  # type: ignore[arg-type]
            timestamp=START + timedelta(minutes=start + n),
        )
        for n in range(8 * users)
    ]


@pytest.fixture
def served(make_engine: Any, catalog: list[ItemIn], monkeypatch: pytest.MonkeyPatch) -> Any:
    """An engine serving an untrained tower (random weights: ranking arithmetic, not quality);
    the popular list is recomputed after every event, so both computations read the same one."""
    import torch

    monkeypatch.setattr("verticals.recommender.model.TOP_REFRESH_S", 0.0)

    from verticals.core.config import SequenceConfig
    from verticals.core.sequence import UserTower, build_network

    torch.manual_seed(0)
    config = SequenceConfig(dim=16, layers=1, heads=2, max_length=6, dropout=0.0)
    trained_ids = [it.id for it in catalog[:60]]  # the last 20 get text-only tower vectors
    net = build_network(384, len(trained_ids), config)
    engine = make_engine(variant_b_share=0.0, candidates=N_CANDIDATES)
    engine.upsert_items(catalog)
    engine.use_tower(UserTower(net, config, trained_ids, "test:v0"))
    engine.ingest_events(_events(catalog, 30, seed=1))
    return engine


def reference(engine: Any, user_id: str, filters: Filters, k: int) -> tuple[list[int], list[float]]:
    """The tower blend computed from scratch (no cache), top-k by (score desc, key asc), filled
    with the newest items like the service."""
    from verticals.recommender.scoring import EXHAUSTIVE_BELOW, Ranked, fill_newest

    tower, model, meta, n = engine.tower, engine.model, engine.meta, engine.settings.candidates
    weights = engine.settings.tower_weights
    user = model.users[user_id]
    recent = np.array(tower.recent[user_id][-tower.max_length :], dtype=np.int64)
    recent = recent[tower.index.table.present[recent]]  # deleted items are not read
    vector = tower.tower.user_vector(tower.index.table.data[recent])
    assert np.allclose(tower.user_vector(user_id), vector, rtol=0, atol=1e-6)  # served one
    text_vector = user.vector()
    found, found_scores = tower.index.search(vector, n)
    best = float(found_scores[0])
    cooc = model.cooccurring(list(user.recent))
    excluded = (user.seen if filters.exclude_seen else set()) | (
        user.purchased if filters.exclude_purchased else set()
    )

    def allowed(keys: np.ndarray) -> np.ndarray:
        keys = np.unique(keys.astype(np.int64))
        keys = keys[meta.mask(keys, filters)]
        return np.array([key for key in keys.tolist() if key not in excluded], dtype=np.int64)

    if filters.categories and meta.category_size(filters.categories) <= EXHAUSTIVE_BELOW:
        keys = allowed(meta.all_keys())
    else:
        keys = allowed(found)
        if len(keys) < k:
            keys = allowed(np.concatenate([found, model.top_popular(n), cooc.top(n)]))
    scores = []
    for key in keys.tolist():
        signal = np.exp(min(float(tower.index.table.data[key] @ vector) - best, 0.0))
        cosine = max(float(model.vectors.data[key] @ text_vector), 0.0)
        popularity = model.popularity[key] / model.popularity.max()
        co = cooc.lookup(np.array([key]))[0] / cooc.values.max() if cooc else 0.0
        scores.append(
            weights.tower * signal
            + weights.text * cosine
            + weights.popularity * popularity
            + weights.cooccurrence * co
        )
    order = sorted(range(len(keys)), key=lambda i: (-scores[i], int(keys[i])))[:k]
    ranked = Ranked(keys[order], np.array(scores, dtype=np.float32)[order], "personal")
    ranked = fill_newest(meta, ranked, filters, excluded, k)
    return ranked.keys.tolist(), ranked.scores.tolist()


def _check_every_user(engine: Any, filters: Filters, k: int) -> int:
    checked = 0
    for user_id in sorted(engine.model.users):
        if not engine.tower.recent.get(user_id):
            continue
        for _ in range(2):  # the second answer may come from what the first one cached
            variant, ranked = engine.recommend(user_id, k, filters)
            assert variant == "A" and ranked.strategy == "personal"
            keys, scores = reference(engine, user_id, filters, k)
            assert ranked.keys.tolist() == keys, user_id
            assert np.allclose(ranked.scores, scores, atol=1e-5), user_id
        checked += 1
    return checked


def test_the_tower_ranking_equals_the_reference_computation(
    served: Any, catalog: list[ItemIn]
) -> None:
    engine = served
    plain = engine.filters()
    assert _check_every_user(engine, plain, 10) >= 25
    _check_every_user(engine, engine.filters(exclude_seen=False), 5)
    _check_every_user(engine, engine.filters(max_price=40.0, in_stock_only=False), 10)
    _check_every_user(engine, engine.filters(categories=[catalog[0].category]), 10)
    # new events (popularity, co-occurrence, user vectors) and a catalog change since
    engine.ingest_events(_events(catalog, 30, seed=2, start=1e4))
    _check_every_user(engine, plain, 10)
    engine.upsert_items([it.model_copy(update={"in_stock": True}) for it in catalog[40:50]])
    _check_every_user(engine, plain, 10)
    engine.delete_items([catalog[3].id, catalog[17].id])
    _check_every_user(engine, plain, 10)
