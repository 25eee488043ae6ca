"""The learnt user tower (trained by the core from the event log, gated, served), the seen
filter and cold start that always fills k."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from verticals.core.registry import ModelRegistry
from verticals.recommender.api import build_app
from verticals.recommender.schemas import EventIn, ItemIn

START = datetime(2026, 1, 1, tzinfo=UTC)


def _event(user: str, item: str, kind: str = "click", minutes: float = 0.0) -> EventIn:
    ts = START + timedelta(minutes=minutes)
    return EventIn(user_id=user, item_id=item, type=kind, timestamp=ts)  # type: ignore[arg-type]


def _chains(catalog: list[ItemIn], users: int, seed: int = 0) -> list[EventIn]:
    """Users walk item chains (i -> i+10 -> i+20 ...) from random starting points: which item
    comes next is learnable from other users, popularity is flat, the text does not carry it."""
    rng = random.Random(seed)
    events = []
    for u in range(users):
        first = rng.randrange(len(catalog))
        for step in range(rng.randint(4, 7)):
            item = catalog[(first + 10 * step) % len(catalog)]
            events.append(_event(f"u{u}", item.id, minutes=u * 10 + step))
    return events


def test_cold_start_fills_k_and_keeps_the_reason(make_engine: Any, catalog: list[ItemIn]) -> None:
    engine = make_engine(variant_b_share=0.0)
    engine.upsert_items(catalog)
    popular = [it.id for it in catalog if it.in_stock][3:20:5]
    engine.ingest_events([_event("early", i, "purchase", n) for n, i in enumerate(popular)])
    with TestClient(build_app(engine.settings, engine)) as client:
        body = client.get("/v1/users/newcomer/recommendations?k=10").json()
    assert body["strategy"] == "cold_start_popular"
    ids = [i["id"] for i in body["items"]]
    assert len(ids) == len(set(ids)) == 10
    assert set(ids[:4]) == set(popular)  # the popular ones first, then the newest items
    in_stock = [it.id for it in catalog if it.in_stock and it.id not in popular]
    assert ids[4:] == in_stock[::-1][:6]
    _, ranked = engine.recommend("newcomer", 50, engine.filters(categories=[catalog[0].category]))
    assert all(engine.meta.categories[k] == catalog[0].category for k in ranked.keys)


def test_seen_items_are_excluded_by_default_views_included(
    make_engine: Any, catalog: list[ItemIn]
) -> None:
    engine = make_engine(variant_b_share=0.0)
    engine.upsert_items(catalog)
    viewed = [catalog[i].id for i in range(0, 30)]
    engine.ingest_events([_event("v", i, "view", n) for n, i in enumerate(viewed)])
    _, ranked = engine.recommend("v", 40, engine.filters())
    shown = {engine.meta.ids[k] for k in ranked.keys}
    assert len(shown) == 40 and not shown & set(viewed)
    _, unfiltered = engine.recommend("v", 40, engine.filters(exclude_seen=False))
    assert {engine.meta.ids[k] for k in unfiltered.keys} & set(viewed)


def test_without_a_promoted_tower_the_old_scorer_serves(
    make_engine: Any, catalog: list[ItemIn], tmp_path: Path
) -> None:
    from verticals.recommender.tower import load_tower

    engine = make_engine()
    assert load_tower(engine.settings, ModelRegistry(tmp_path / "empty")) is None
    assert engine.tower is None and engine.stats()["tower"] is None


@pytest.fixture(scope="module")
def trained(tmp_path_factory: Any, encoder: Any, catalog: list[ItemIn]) -> dict[str, Any]:
    """A real tower trained by the core on a small event log (about 20 s on 2 cores)."""
    from verticals.recommender.pipeline import Recommender
    from verticals.recommender.settings import RecommenderSettings
    from verticals.recommender.tower import train_tower_from_log

    root = tmp_path_factory.mktemp("tower")
    settings = RecommenderSettings(data_dir=root, admin_api_key="k", variant_b_share=0.0)
    engine = Recommender(settings, encoder=encoder, tower=None)
    engine.upsert_items(catalog)
    engine.ingest_events(_chains(catalog, 150))
    engine.close()
    registry = ModelRegistry(root / "registry")
    result = train_tower_from_log(
        settings,
        epochs=60,
        learning_rate=1e-2,
        registry=registry,
        log=lambda m: None,
        sequence={"dim": 32, "layers": 1, "max_length": 10, "dropout": 0.1, "id_dropout": 0.1},
    )
    return {"settings": settings, "registry": registry, "result": result}


def test_tower_training_learns_and_is_gated(trained: dict[str, Any]) -> None:
    import torch

    from verticals.core.sequence import (
        Sequences,
        build_network,
        leave_last_out,
        ranking_metrics,
        score_users,
    )

    result, registry = trained["result"], trained["registry"]
    card = registry.card("recommender-tower", result["version"])
    assert card["kind"] == "sequence" and card["gate"]["promoted"] == result["promoted"]
    assert card["config"]["sequence"]["members"] == 3  # the served shape: a three-seed ensemble
    metrics = card["metrics"]
    assert metrics["validation_hr@10"] > metrics["validation_popularity_hr@10"] + 0.2
    assert metrics["hr@10"] > metrics["test_popularity_hr@10"] + 0.2
    assert result["promoted"] and card["current"]
    # an untrained tower of the same shape on the same held-out users does far worse
    data = Sequences.load(registry.path("recommender-tower") / "data")
    torch.manual_seed(0)
    config = __import__("verticals.core.config", fromlist=["SequenceConfig"]).SequenceConfig(
        **card["config"]["sequence"]
    )
    untrained = build_network(data.vectors.shape[1], len(data.vectors), config).eval()
    test = leave_last_out(data.items).test
    assert (
        ranking_metrics(score_users(untrained, data.vectors, test, config.max_length))["hr@10"]
        < metrics["hr@10"] - 0.2
    )


def test_the_promoted_tower_serves_and_a_new_event_changes_the_next_response(
    trained: dict[str, Any], encoder: Any, catalog: list[ItemIn]
) -> None:
    from verticals.recommender.pipeline import Recommender
    from verticals.recommender.tower import load_tower

    settings, registry = trained["settings"], trained["registry"]
    engine = Recommender(settings, encoder=encoder, tower=load_tower(settings, registry))
    try:
        assert engine.tower is not None and engine.stats()["tower"].startswith("recommender-tower")
        ids = [it.id for it in catalog]
        engine.ingest_events(
            [_event("walker", ids[5], minutes=1e5), _event("walker", ids[15], minutes=1e5 + 1)]
        )
        _, first = engine.recommend("walker", 5, engine.filters())
        assert first.strategy == "personal" and len(first.keys) == 5
        assert engine.meta.ids[int(first.keys[0])] == ids[25]  # the chain's next item
        assert "walker" in engine.tower.vectors  # computed once, until the next event
        engine.ingest_events([_event("walker", ids[25], minutes=1e5 + 2)])
        assert "walker" not in engine.tower.vectors
        started = time.perf_counter()
        _, second = engine.recommend("walker", 5, engine.filters())
        assert time.perf_counter() - started < 0.5
        assert second.keys.tolist() != first.keys.tolist()
        assert engine.meta.ids[int(second.keys[0])] == ids[35]
        vector = engine.tower.user_vector("walker")
        assert vector is not None and np.isfinite(vector).all()
        # a new item is served with a text-only tower vector
        engine.upsert_items([ItemIn(id="brand-new", title="A brand new item", category="books")])
        key = engine.meta.key_of["brand-new"]
        assert engine.tower.index.table.present[key]
    finally:
        engine.close()


def test_context_items_are_read_but_only_positives_are_targets() -> None:
    """Each user views an item and then clicks its partner (a fixed random pairing): the view
    is context (never a target) and the only clue to the next click, so the tower must read it."""
    from verticals.core.config import SequenceConfig, TrainingConfig
    from verticals.core.sequence import (
        Sequences,
        fit_tower,
        leave_last_out,
        ranking_metrics,
        score_users,
    )

    rng = np.random.default_rng(0)
    n_items = 60
    partner = rng.permutation(n_items)
    vectors = rng.normal(size=(n_items, 16)).astype(np.float32)
    items, flags = [], []
    for _ in range(120):
        rows, marks = [], []
        for viewed in rng.integers(0, n_items, size=5):
            rows += [int(viewed), int(partner[viewed])]
            marks += [False, True]
        items.append(rows)
        flags.append(marks)
    data = Sequences(vectors, [str(i) for i in range(n_items)], [], items, flags)
    split = leave_last_out(data.items, data.positive)
    assert all(partner[history[-1]] == target for history, target in split.test)
    assert split.train_positive is not None and not any(split.train_positive[0][0::2])
    config = SequenceConfig(dim=32, layers=1, heads=2, max_length=10, dropout=0.1, id_dropout=0.0)
    fitted = fit_tower(
        vectors,
        split.train,
        split.validation,
        config,
        TrainingConfig(epochs=40, batch_size=32, learning_rate=1e-2, patience=10),
        positive=split.train_positive,
    )
    hr = ranking_metrics(score_users(fitted.net, vectors, split.test, config.max_length))["hr@10"]
    assert hr > 0.8  # chance: 10 of about 50 unseen items


def test_the_log_marks_views_as_context_and_other_events_as_targets(
    make_engine: Any, catalog: list[ItemIn]
) -> None:
    from verticals.recommender.tower import log_as_sequences

    engine = make_engine()
    engine.upsert_items(catalog[:5])
    ids = [it.id for it in catalog[:5]]
    engine.ingest_events(
        [
            _event("u", ids[0], "view", 0),
            _event("u", ids[1], "click", 1),
            _event("u", ids[2], "view", 2),
            _event("u", ids[2], "purchase", 3),  # a view then a purchase: a target
            _event("u", ids[0], "view", 4),  # seen again: keeps its first place
        ]
    )
    data = log_as_sequences(engine.settings)
    rows = data.items[data.users.index("u")]
    assert [data.item_ids[r] for r in rows] == ids[:3]
    assert data.flags()[data.users.index("u")] == [False, True, True]


def test_the_tower_blend_adds_the_text_cosine_when_weighted(
    make_engine: Any, catalog: list[ItemIn]
) -> None:
    from verticals.recommender.model import CoScores
    from verticals.recommender.settings import TowerWeights
    from verticals.recommender.tower import blend_scores

    engine = make_engine()
    engine.upsert_items(catalog[:10])
    engine.ingest_events([_event("u", catalog[0].id, "click", 0)])
    keys = np.array([engine.meta.key_of[it.id] for it in catalog[:10]], dtype=np.int64)
    user = engine.model.users["u"].vector()
    tower = np.linspace(0.0, 1.0, 10).astype(np.float32)
    text_only = TowerWeights(tower=0.0, text=1.0, popularity=0.0, cooccurrence=0.0)
    got = blend_scores(text_only, tower, engine.model, keys, CoScores.empty(), user)
    cosine = np.clip(engine.model.vectors.data[keys] @ user, 0.0, None)
    assert np.allclose(got, cosine) and got.argmax() == 0  # the clicked item is its own best
    both = TowerWeights(tower=2.0, text=1.0, popularity=0.0, cooccurrence=0.0)
    got = blend_scores(both, tower, engine.model, keys, CoScores.empty(), user)
    assert np.allclose(got, 2.0 * tower + cosine)


def test_an_ensemble_tower_scores_the_mean_of_its_members(tmp_path: Path) -> None:
    import torch

    from verticals.core.config import SequenceConfig
    from verticals.core.sequence import UserTower, _gather, build_network, members_of, save_tower

    torch.manual_seed(0)
    config = SequenceConfig(dim=8, layers=1, heads=2, max_length=5, dropout=0.0, members=3)
    net = build_network(12, 20, config).eval()
    assert len(members_of(net)) == 3
    text = np.random.default_rng(0).normal(size=(20, 12)).astype(np.float32)
    rows = torch.tensor([[-1, -1, 3, 7, 1]])
    with torch.no_grad():
        member_scores = []
        for member in members_of(net):
            items = member.items(torch.from_numpy(text))
            member_scores.append((items @ member.users(_gather(items, rows))[0, -1]).numpy())
        items = net.items(torch.from_numpy(text))
        scores = (items @ net.users(_gather(items, rows))[0, -1]).numpy()
    assert items.shape == (20, 3 * 8 + 1)
    assert np.allclose(scores, np.mean(member_scores, axis=0), atol=1e-5)
    assert not np.allclose(member_scores[0], member_scores[1])  # the members differ

    # saved and served: the same scores, one inner product per item
    save_tower(net, tmp_path, config, [f"i{n}" for n in range(20)], 12)
    tower = UserTower.from_directory(tmp_path)
    assert tower.dimension == 3 * 8 + 1
    served = tower.item_vectors(text, [f"i{n}" for n in range(20)])
    user = tower.user_vector(served[[3, 7, 1]])
    assert np.allclose(served @ user, scores, atol=1e-5)


@pytest.mark.parametrize(("members", "layers"), [(1, 1), (3, 1), (2, 2)])
def test_the_numpy_user_vector_equals_the_torch_one(members: int, layers: int) -> None:
    import torch

    from verticals.core.config import SequenceConfig
    from verticals.core.sequence import UserTower, build_network, numpy_user_vector

    torch.manual_seed(members)
    config = SequenceConfig(dim=16, layers=layers, heads=2, max_length=6, members=members)
    tower = UserTower(build_network(24, 30, config), config, [f"i{n}" for n in range(30)])
    fast = numpy_user_vector(tower)
    rng = np.random.default_rng(0)
    for n in (0, 1, 4, 6, 9):  # empty, short, exactly max_length, longer (the latest are read)
        history = rng.normal(size=(n, tower.dimension)).astype(np.float32)
        expected = tower.user_vector(history)
        assert fast(history).shape == expected.shape == (16 * members + 1,)
        assert np.allclose(fast(history), expected, atol=1e-5), n
