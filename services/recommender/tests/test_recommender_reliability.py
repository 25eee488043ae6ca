"""Regression tests for issue 15: replay is safe, a 500 never follows a commit, time is bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from verticals.recommender.api import build_app
from verticals.recommender.pipeline import Recommender
from verticals.recommender.schemas import ItemIn

FAR_FUTURE = "9999-12-31T00:00:00Z"


def _count(engine: Recommender) -> int:
    with engine.store.session() as session:
        return engine.store.count_events(session)


def _trending(client: TestClient, k: int = 5) -> list[str]:
    body = client.get(f"/v1/users/nobody-{k}/recommendations?k={k}").json()
    assert body["strategy"] == "cold_start_popular"
    return [i["id"] for i in body["items"] if i["score"] > 0]  # not the newest-item filler


def test_returning_to_an_old_item_after_many_distinct_ones(
    make_engine: Any, catalog: list[ItemIn]
) -> None:
    """The reproduction: 41 distinct items trim ``recent``; going back to the first one gave a
    500 after the commit, and every later start died replaying the log."""
    engine = make_engine(variant_b_share=0.0)
    engine.upsert_items(catalog)
    ids = [it.id for it in catalog[:41]]
    with TestClient(build_app(engine.settings, engine)) as client:
        for item_id in ids:
            r = client.post("/v1/events", json={"user_id": "u", "item_id": item_id, "type": "view"})
            assert r.status_code == 200, r.text
        r = client.post("/v1/events", json={"user_id": "u", "item_id": ids[0], "type": "click"})
        assert r.status_code == 200, r.text
        assert client.get("/v1/users/u/recommendations?k=5").json()["strategy"] == "personal"
    user = engine.model.users["u"]
    assert list(user.recent)[-1] == engine.meta.key_of[ids[0]]
    assert len(user.recent) == engine.settings.cooccurrence_window and len(user.seen) == 41
    before = engine.recommend("u", 10, engine.filters())[1].keys.tolist()
    engine.close()

    restarted = make_engine(variant_b_share=0.0)  # same database: replays the 42 events
    assert _count(restarted) == 42 and restarted.model.users["u"].events == 42
    assert restarted.model.users["u"].recent == user.recent
    assert restarted.recommend("u", 10, restarted.filters())[1].keys.tolist() == before


def test_a_failed_in_memory_update_after_commit_still_succeeds(
    client: TestClient, engine: Recommender, catalog: list[ItemIn], monkeypatch: Any
) -> None:
    """Should applying committed events fail, the request reports success and the model is
    rebuilt from the log (which holds the events)."""
    calls = {"n": 0}
    real = type(engine.model).ingest

    def flaky(self: Any, *args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        real(self, *args)

    monkeypatch.setattr(type(engine.model), "ingest", flaky)
    event = {"user_id": "f", "item_id": catalog[0].id, "type": "purchase"}
    r = client.post("/v1/events", json=event)
    assert r.status_code == 200 and r.json() == {"accepted": 1}
    assert _count(engine) == 1 and engine.model.users["f"].events == 1


def test_far_future_event_is_rejected_and_changes_nothing(
    client: TestClient, engine: Recommender, catalog: list[ItemIn]
) -> None:
    popular = [catalog[i].id for i in (1, 2, 3)]
    events = [{"user_id": f"p{n}", "item_id": i, "type": "view"} for n in range(3) for i in popular]
    assert client.post("/v1/events", json=events).status_code == 200
    before = _trending(client)
    assert set(before) == set(popular)

    bad = {"user_id": "anon", "item_id": catalog[9].id, "type": "purchase", "timestamp": FAR_FUTURE}
    r = client.post("/v1/events", json=bad)
    assert r.status_code == 422 and "ahead of the server clock" in r.json()["detail"]
    good = {"user_id": "ok", "item_id": catalog[1].id, "type": "view"}
    r = client.post("/v1/events", json={"events": [good, bad]})  # one bad event rejects the batch
    assert r.status_code == 422
    assert _count(engine) == 9 and "anon" not in engine.model.users
    assert _trending(client) == before

    soon = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()  # within the allowed skew
    ok = {"user_id": "clock", "item_id": catalog[1].id, "type": "view", "timestamp": soon}
    assert client.post("/v1/events", json=ok).status_code == 200


def test_start_skips_far_future_events_an_older_version_stored(
    make_engine: Any, catalog: list[ItemIn]
) -> None:
    engine = make_engine(variant_b_share=0.0)
    engine.upsert_items(catalog)
    now = datetime.now(UTC).timestamp()
    real = [
        {"user_id": f"p{n}", "item_id": catalog[i].id, "type": "view", "ts": now - 60}
        for n in range(3)
        for i in (1, 2, 3)
    ]
    bad = [
        {"user_id": "anon", "item_id": catalog[9].id, "type": "purchase", "ts": 253402214400.0},
        {"user_id": "anon", "item_id": catalog[9].id, "type": "mystery", "ts": now - 30},
    ]
    with engine.store.session() as session:  # written directly, as an older version did
        engine.store.add_events(session, real + bad)
    engine.close()

    restarted = make_engine(variant_b_share=0.0)
    top = restarted.model.top_popular(5).tolist()
    assert {restarted.meta.ids[k] for k in top[:3]} == {catalog[i].id for i in (1, 2, 3)}
    assert restarted.model.users["anon"].events == 1  # the stored in-range event is kept


def test_start_replays_a_log_that_returns_to_an_old_item(
    make_engine: Any, catalog: list[ItemIn]
) -> None:
    """The log the reproduction leaves behind: every start used to die replaying it."""
    engine = make_engine()
    engine.upsert_items(catalog)
    now = datetime.now(UTC).timestamp()
    ids = [it.id for it in catalog[:41]] + [catalog[0].id]
    rows = [
        {"user_id": "u", "item_id": i, "type": "view", "ts": now - 100 + n}
        for n, i in enumerate(ids)
    ]
    with engine.store.session() as session:
        engine.store.add_events(session, rows)
    engine.close()
    restarted = make_engine()
    assert restarted.model.users["u"].events == 42
    assert next(reversed(restarted.model.users["u"].recent)) == restarted.meta.key_of[ids[0]]


def test_an_event_file_with_a_far_future_row_is_refused_before_anything_is_stored(
    tmp_path: Any,
) -> None:
    from verticals.core.data import DataError
    from verticals.recommender.ingest import read_events

    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,item_id,type,timestamp\n"
        "u,sku-000001,view,2026-01-01T00:00:00Z\n"
        f"u,sku-000002,purchase,{FAR_FUTURE}\n"
    )
    with pytest.raises(DataError, match="row 2: timestamp 9999-12-31"):
        read_events(path)
