"""The recommender on a real local PostgreSQL server: the API round trip, and two replicas
(separate data folders, one database) whose FAISS indexes are rebuilt from it at start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from verticals.recommender.api import build_app
from verticals.recommender.pipeline import Recommender
from verticals.recommender.schemas import EventIn, ItemIn
from verticals.recommender.settings import RecommenderSettings

ADMIN = {"X-API-Key": "test-admin-key"}


def replica(path: Path, url: str, encoder: Any) -> Recommender:
    settings = RecommenderSettings(
        data_dir=path, database_url=url, admin_api_key="test-admin-key", variant_b_share=0.0
    )  # type: ignore[arg-type]
    return Recommender(settings, encoder=encoder)


def events(user: str, items: list[str], kind: str = "purchase") -> list[EventIn]:
    now = datetime.now(UTC)
    return [
        EventIn(user_id=user, item_id=i, type=kind, timestamp=now - timedelta(minutes=n))  # type: ignore[arg-type]
        for n, i in enumerate(items)
    ]


def test_api_round_trip_on_postgres(
    tmp_path: Path, encoder: Any, catalog: list[ItemIn], postgres_url: str
) -> None:
    engine = replica(tmp_path, postgres_url, encoder)
    assert engine.store.db.dialect == "postgresql"
    with TestClient(build_app(engine.settings, engine)) as client:
        items = [it.model_dump() for it in catalog]
        r = client.post("/v1/items", json={"items": items}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["created"] == len(catalog), r.text
        renamed = {**items[0], "title": "Renamed \x00 item", "attributes": {"k": [1, 2]}}
        r = client.put(f"/v1/items/{items[0]['id']}", json=renamed, headers=ADMIN)
        assert r.json()["updated"] == 1
        got = client.get(f"/v1/items/{items[0]['id']}").json()
        assert got["title"] == "Renamed \ufffd item" and got["attributes"] == {"k": [1, 2]}
        # aware UTC on both databases (a naive column would shift by the server's zone)
        updated = datetime.fromisoformat(got["updated_at"].replace("Z", "+00:00"))
        assert abs((updated - datetime.now(UTC)).total_seconds()) < 120
        stamp = "2026-03-02T09:00:00+02:00"
        r = client.post(
            "/v1/events",
            json={
                "events": [
                    {"user_id": "u1", "item_id": items[i]["id"], "type": "purchase",
                     "timestamp": stamp}
                    for i in (1, 2, 3)
                ]
            },
            headers=ADMIN,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        recs = client.get("/v1/users/u1/recommendations?k=5").json()
        assert recs["strategy"] == "personal" and len(recs["items"]) == 5
        similar = client.get(f"/v1/items/{items[4]['id']}/similar?k=3").json()
        assert len(similar["items"]) == 3
        r = client.post("/v1/items/delete", json={"ids": [items[5]["id"], "nope"]}, headers=ADMIN)
        assert r.json() == {"deleted": 1, "missing": ["nope"]}
        assert client.get("/v1/items?limit=5").json()["total"] == len(catalog) - 1
    with engine.store.session() as session:
        (ts,) = {e[3] for batch in engine.store.iter_events() for e in batch}
        assert engine.store.count_events(session) == 3
    assert ts == datetime(2026, 3, 2, 7, tzinfo=UTC).timestamp()
    engine.close()


def test_two_replicas_agree_through_the_database(
    tmp_path: Path, encoder: Any, catalog: list[ItemIn], postgres_url: str
) -> None:
    a = replica(tmp_path / "a", postgres_url, encoder)
    a.upsert_items(catalog)
    a.delete_items([catalog[5].id])
    a.ingest_events(events("p", [catalog[i].id for i in (1, 2, 3)]))
    b = replica(tmp_path / "b", postgres_url, encoder)  # starts after a's writes
    assert len(b.index) == len(a.index) == len(catalog) - 1
    assert catalog[5].id not in b.meta.key_of and b.model.users["p"].events == 3
    for item in catalog[:3]:
        key = a.meta.key_of[item.id]
        assert b.meta.key_of[item.id] == key
        np.testing.assert_array_equal(b.index.table.data[key], a.index.table.data[key])
    ra, rb = a.recommend("p", 10, a.filters())[1], b.recommend("p", 10, b.filters())[1]
    assert ra.keys.tolist() == rb.keys.tolist()
    np.testing.assert_allclose(ra.scores, rb.scores, rtol=1e-5)

    # an update through b reaches a replica started after it
    snow = catalog[3].model_copy(update={"title": "Arctic expedition snowshoes", "tags": []})
    assert b.upsert_items([snow]) == (0, 1)
    c = replica(tmp_path / "c", postgres_url, encoder)
    query = encoder.encode(["snowshoes for an arctic expedition"])[0]
    keys, _ = c.index.search(query, 1)
    assert c.meta.ids[int(keys[0])] == snow.id

    # both replicas upserting the same new ids: one row each, the same keys
    new = [ItemIn(id=f"n{i}", title=f"New item {i}", category="test") for i in range(3)]
    assert a.upsert_items(new)[0] == 3
    assert b.upsert_items(new) == (0, 3)
    assert [a.meta.key_of[i.id] for i in new] == [b.meta.key_of[i.id] for i in new]
    with a.store.session() as session:
        assert a.store.count_items(session) == len(catalog) - 1 + 3
    for engine in (a, b, c):
        engine.close()


def test_a_running_replica_applies_another_replicas_catalog_changes(
    tmp_path: Path, encoder: Any, catalog: list[ItemIn], postgres_url: str
) -> None:
    """No restart: b's FAISS cache follows a's item writes through the catalog version."""
    import time

    def fast(path: Path) -> Recommender:
        settings = RecommenderSettings(
            data_dir=path,
            database_url=postgres_url,
            admin_api_key="test-admin-key",
            variant_b_share=0.0,
            catalog_refresh_s=0.05,
        )  # type: ignore[arg-type]
        return Recommender(settings, encoder=encoder)

    def within(seconds: float, check: Any) -> float:
        started = time.monotonic()
        while not check():
            assert time.monotonic() - started < seconds, f"not within {seconds} s"
            time.sleep(0.02)
        return time.monotonic() - started

    a, b = fast(tmp_path / "a"), fast(tmp_path / "b")
    a.upsert_items(catalog)
    within(2.0, lambda: len(b.index) == len(catalog))
    query = encoder.encode(["snowshoes for an arctic expedition"])[0]
    snow = catalog[3].model_copy(update={"title": "Arctic expedition snowshoes", "tags": []})
    a.upsert_items([snow])  # an update in place: same key, new vector and title

    def b_finds_snow() -> bool:
        keys, _ = b.index.search(query, 1)
        return b.meta.ids[int(keys[0])] == snow.id and b.meta.titles[int(keys[0])] == snow.title

    within(2.0, b_finds_snow)
    key = a.meta.key_of[snow.id]
    np.testing.assert_array_equal(b.index.table.data[key], a.index.table.data[key])
    # a delete through b leaves a's recommendations and similar items
    b.delete_items([catalog[0].id])
    within(2.0, lambda: catalog[0].id not in a.meta.key_of and len(a.index) == len(catalog) - 1)
    similar = a.similar(catalog[1].id, 10, a.filters(in_stock_only=False))
    assert catalog[0].id not in {a.meta.ids[k] for k in similar.keys.tolist()}
    assert a.catalog_version == b.catalog_version == a.store.catalog_version()
    for engine in (a, b):
        engine.close()
    assert b._refresher is not None and not b._refresher.is_alive()
