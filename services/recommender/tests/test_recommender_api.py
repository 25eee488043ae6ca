from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from verticals.recommender.pipeline import Recommender

ADMIN = {"X-API-Key": "test-admin-key"}


def _item(i: str, **extra: Any) -> dict[str, Any]:
    return {"id": i, "title": f"Test item {i}", "category": "test", "price": 10.0, **extra}


def _events(engine: Recommender) -> int:
    with engine.store.session() as session:
        return engine.store.count_events(session)


def test_item_crud(client: TestClient, engine: Recommender) -> None:
    assert client.post("/v1/items", json={"items": [_item("x1")]}).status_code == 401
    r = client.post("/v1/items", json={"items": [_item("x1"), _item("x2")]}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2 and r.json()["encoder_version"] == engine.model_version
    r = client.put("/v1/items/x1", json=_item("x1", title="Renamed item", price=3.5), headers=ADMIN)
    assert r.json() == {"created": 0, "updated": 1, "encoder_version": engine.model_version}
    got = client.get("/v1/items/x1").json()
    assert got["title"] == "Renamed item" and got["price"] == 3.5
    assert client.delete("/v1/items/x1", headers=ADMIN).json()["deleted"] == 1
    assert client.get("/v1/items/x1").status_code == 404
    assert client.delete("/v1/items/x1", headers=ADMIN).status_code == 404
    r = client.post("/v1/items/delete", json={"ids": ["x2", "nope"]}, headers=ADMIN)
    assert r.json() == {"deleted": 1, "missing": ["nope"]}
    assert client.get("/v1/items?limit=5").json()["total"] == 80


def test_duplicate_ids_and_bad_items_store_nothing(client: TestClient, engine: Recommender) -> None:
    r = client.post("/v1/items", json={"items": [_item("d1"), _item("d1")]}, headers=ADMIN)
    assert r.status_code == 422 and "duplicate item id" in r.json()["detail"]
    r = client.post("/v1/items", json={"items": [_item("d2", price=-1)]}, headers=ADMIN)
    assert r.status_code == 422 and "price" in r.json()["detail"]
    r = client.post("/v1/items", json={"items": [{"id": "bad id!", "title": "x"}]}, headers=ADMIN)
    assert r.status_code == 422
    assert client.get("/v1/items/d1").status_code == 404
    assert len(engine.index) == 80


def test_event_for_unknown_item_is_rejected_and_nothing_stored(
    client: TestClient, engine: Recommender
) -> None:
    r = client.post("/v1/events", json={"user_id": "u", "item_id": "missing", "type": "view"})
    assert r.status_code == 404 and "missing" in r.json()["detail"]
    batch = [
        {"user_id": "u", "item_id": "sku-000001", "type": "view"},
        {"user_id": "u", "item_id": "ghost", "type": "purchase"},
    ]
    assert client.post("/v1/events", json={"events": batch}).status_code == 404
    assert _events(engine) == 0 and "u" not in engine.model.users
    bad_type = {"user_id": "u", "item_id": "sku-000001", "type": "like"}
    assert client.post("/v1/events", json=bad_type).status_code == 422
    assert _events(engine) == 0


def test_oversize_batches_are_rejected(make_engine: Any, catalog: list[Any]) -> None:
    engine = make_engine(max_batch=5)
    engine.upsert_items(catalog[:5])
    from verticals.recommender.api import build_app

    with TestClient(build_app(engine.settings, engine)) as client:
        events = [{"user_id": "u", "item_id": catalog[0].id, "type": "view"}] * 6
        r = client.post("/v1/events", json=events)
        assert r.status_code == 413 and "over the limit" in r.json()["detail"]
        items = [_item(f"o{i}") for i in range(6)]
        assert client.post("/v1/items", json={"items": items}, headers=ADMIN).status_code == 413
        assert _events(engine) == 0 and len(engine.index) == 5
        huge = {"items": [_item("big", description="x" * 9000)] * 150}
        assert client.post("/v1/items", json=huge, headers=ADMIN).status_code == 413


def test_event_changes_next_recommendations(client: TestClient, catalog: list[Any]) -> None:
    before = client.get("/v1/users/shopper/recommendations?k=10").json()
    assert before["strategy"] == "cold_start_newest"  # no events at all yet
    assert before["variant"] == "A" and before["model_version"]
    outdoor = [it.id for it in catalog if it.category == "outdoor"][:3]
    events = [{"user_id": "shopper", "item_id": i, "type": "purchase"} for i in outdoor]
    assert client.post("/v1/events", json=events).json() == {"accepted": 3}
    after = client.get("/v1/users/shopper/recommendations?k=5").json()
    assert after["strategy"] == "personal"
    assert [i["id"] for i in after["items"]] != [i["id"] for i in before["items"]][:5]
    assert sum(i["category"] == "outdoor" for i in after["items"]) >= 3
    assert not set(outdoor) & {i["id"] for i in after["items"]}  # purchased are excluded
    newcomer = client.get("/v1/users/newcomer/recommendations?k=3").json()
    assert newcomer["strategy"] == "cold_start_popular" and len(newcomer["items"]) == 3
    shown = [i["id"] for i in newcomer["items"]]
    popular = [i for i in shown if i in outdoor]  # the only items with events come first
    assert popular and shown[: len(popular)] == popular


def test_filters(client: TestClient, engine: Recommender, catalog: list[Any]) -> None:
    client.post("/v1/events", json={"user_id": "f", "item_id": catalog[0].id, "type": "click"})
    r = client.get("/v1/users/f/recommendations?k=20&category=books,toys&max_price=60")
    items = r.json()["items"]
    assert items and all(i["category"] in {"books", "toys"} for i in items)
    assert all(i["price"] <= 60 and i["in_stock"] for i in items)
    r = client.get("/v1/users/f/recommendations?k=50&in_stock=false&min_price=20")
    assert any(not i["in_stock"] for i in r.json()["items"])
    assert all(i["price"] >= 20 for i in r.json()["items"])
    seen = client.get("/v1/users/f/recommendations?k=50&exclude_seen=true").json()["items"]
    assert catalog[0].id not in {i["id"] for i in seen}
    bad = client.get("/v1/users/f/recommendations?min_price=50&max_price=10")
    assert bad.status_code == 422
    assert client.get("/v1/users/f/recommendations?k=0").status_code == 422
    assert client.get("/v1/users/f/recommendations?k=1000").status_code == 422


def test_cold_start_query_and_new_item(client: TestClient) -> None:
    r = client.get("/v1/users/newbie/recommendations", params={"k": 5, "q": "camping tent"})
    body = r.json()
    assert body["strategy"] == "cold_start_query"
    assert body["items"][0]["category"] == "outdoor"
    item = {
        "id": "new-1",
        "title": "Glacier expedition snowshoes",
        "description": "Aluminium snowshoes with crampons for deep winter snow.",
        "category": "winter",
        "price": 120.0,
    }
    assert client.post("/v1/items", json={"items": [item]}, headers=ADMIN).status_code == 200
    r = client.get("/v1/users/other/recommendations", params={"k": 3, "q": "snowshoes for snow"})
    assert r.json()["items"][0]["id"] == "new-1"
    similar = client.get("/v1/items/new-1/similar?k=5").json()
    assert similar["strategy"] == "similar" and len(similar["items"]) == 5
    assert "new-1" not in {i["id"] for i in similar["items"]}
    assert client.get("/v1/items/nope/similar").status_code == 404


def test_similar_uses_cooccurrence(client: TestClient, catalog: list[Any]) -> None:
    a, b = catalog[0].id, catalog[1].id  # different categories, co-bought by many users
    events = [
        {"user_id": f"c{u}", "item_id": i, "type": "purchase"} for u in range(8) for i in (a, b)
    ]
    client.post("/v1/events", json=events)
    similar = client.get(f"/v1/items/{a}/similar?k=3").json()
    assert similar["items"][0]["id"] == b
