"""The support bot on a real local PostgreSQL server: the API round trip (pgvector, the default
there), and two FAISS replicas (separate data folders, one database) that agree after a
restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

FAQ = (
    "id,question,answer,category,tags,url\n"
    'p1,Do you ship to Iceland?,"Yes, in 5 to 8 days.",shipping,iceland|abroad,https://x.example/p1\n'
    'p2,Can I pay with a voucher?,"Yes, enter it at checkout.",payments,,\n'
    'p3,Do you sell lamps?,"Yes, floor and desk lamps.",products,,\n'
)


def test_api_round_trip_on_postgres(
    tmp_path: Path, encoder: Any, settings_factory: Any, root_key: str, postgres_url: str
) -> None:
    from verticals.support_bot.api import build_app, session_token
    from verticals.support_bot.pipeline import SupportBot

    settings = settings_factory(tmp_path, database_url=postgres_url)
    bot = SupportBot(settings, encoder=encoder)
    assert bot.store.db.dialect == "postgresql"
    assert bot.knowledge.store_kind == "pgvector"
    with TestClient(build_app(settings, bot)) as client:
        keys = client.post(
            "/v1/tenants", json={"id": "shop", "name": "Shop"}, headers={"X-API-Key": root_key}
        ).json()
        admin = {"X-API-Key": keys["admin_key"]}
        widget = {"X-API-Key": keys["widget_key"]}
        long_category = "c" * 300  # past SQLite's unenforced VARCHAR(100) of the first schema
        r = client.post(
            "/v1/tenants/shop/faq",
            json={
                "entries": [
                    {"id": "ret-1", "question": "How do I return an item?", "answer": "Use the "
                     "returns page within 30 days.", "category": long_category},
                    {"id": "pay-1", "question": "Which cards do you accept?",
                     "answer": "Visa and Mastercard.", "tags": ["cards"]},
                ]
            },
            headers=admin,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        doc = "# Gift wrap\n\nGift wrapping costs 3 euros and is chosen at checkout.\n"
        r = client.post(
            "/v1/tenants/shop/documents",
            json={"id": "gifts", "content": doc, "title": "Gift wrap"},
            headers=admin,
        )
        assert r.status_code == 200 and r.json()["count"] >= 1, r.text

        ask = {"tenant": "shop", "session_id": "s-1"}
        # a NUL (PostgreSQL text cannot hold one) is stored as U+FFFD instead of failing
        answer = client.post(
            "/v1/chat", json={**ask, "message": "how do I return an item?\x00"}, headers=widget
        ).json()
        assert answer["kind"] == "answer" and answer["citations"][0]["id"] == "ret-1"
        wrap = client.post(
            "/v1/chat", json={**ask, "message": "how much is gift wrapping?"}, headers=widget
        ).json()
        assert wrap["citations"][0]["id"].startswith("gifts")
        away = client.post(
            "/v1/chat", json={**ask, "message": "what is the capital of Australia?"}, headers=widget
        ).json()
        assert away["kind"] == "handoff" and away["handoff_id"]

        handoffs = client.get("/v1/handoffs?tenant=shop&status=open", headers=admin).json()
        assert [h["id"] for h in handoffs] == [away["handoff_id"]]
        assert handoffs[0]["created_at"].endswith("+00:00")  # aware UTC on both databases
        r = client.post(
            f"/v1/handoffs/{away['handoff_id']}/reply",
            json={"tenant": "shop", "text": "Canberra.", "entry_id": "ret-1", "close": False},
            headers=admin,
        )
        assert r.status_code == 200, r.text
        assert client.get("/v1/handoffs?tenant=shop&status=answered", headers=admin).json()
        r = client.post(
            "/v1/feedback",
            json={**ask, "message_id": answer["message_id"], "rating": "up"},
            headers=widget,
        )
        assert r.status_code == 201, r.text

        token = {"X-Session-Token": session_token(settings, "shop", "s-1")}
        messages = client.get(
            "/v1/sessions/s-1/messages?tenant=shop", headers={**widget, **token}
        ).json()
        assert [m["role"] for m in messages] == ["user", "bot"] * 3 + ["staff"]
        assert messages[0]["text"] == "how do I return an item?\ufffd"
        entries = client.get("/v1/tenants/shop/entries", headers=admin).json()
        assert {e["id"]: e["category"] for e in entries}["ret-1"] == long_category
        r = client.post(
            "/v1/handoffs/999999/reply", json={"tenant": "shop", "text": "x"}, headers=admin
        )
        assert r.status_code == 404 and "999999" in r.json()["detail"], r.text
    ratings = sorted(f.rating for f in bot.store.feedback("shop"))
    assert ratings == ["resolved", "up"]
    origins = {origin for _, _, origin in bot.training_pairs("shop")}
    assert {"faq", "feedback:up", "feedback:resolved"} <= origins
    bot.store.db.dispose()


def test_every_accepted_handoff_id_is_answered_not_found_on_postgres(
    tmp_path: Path, encoder: Any, settings_factory: Any, root_key: str, postgres_url: str
) -> None:
    """Ids the API accepts reach the database and are answered 404; one past them is 422."""
    from verticals.support_bot.api import build_app
    from verticals.support_bot.pipeline import SupportBot
    from verticals.support_bot.schemas import MAX_ROW_ID

    settings = settings_factory(tmp_path, database_url=postgres_url)
    bot = SupportBot(settings, encoder=encoder)
    with TestClient(build_app(settings, bot)) as client:
        root = {"X-API-Key": root_key}
        assert client.post("/v1/tenants", json={"id": "shop"}, headers=root).status_code == 201
        reply = {"tenant": "shop", "text": "x"}
        for too_big in (MAX_ROW_ID + 1, 999_999_999_999):
            r = client.post(f"/v1/handoffs/{too_big}/reply", json=reply, headers=root)
            assert r.status_code == 422, r.text
        for missing in (2**31 - 1, MAX_ROW_ID):
            r = client.post(f"/v1/handoffs/{missing}/reply", json=reply, headers=root)
            assert r.status_code == 404 and str(missing) in r.json()["detail"], r.text
    bot.store.db.dispose()


def test_two_replicas_agree_through_the_database(
    tmp_path: Path, encoder: Any, settings_factory: Any, postgres_url: str
) -> None:
    from verticals.support_bot.pipeline import SupportBot
    from verticals.support_bot.text import EntryIn

    def replica(name: str) -> SupportBot:
        # FAISS in each replica (pgvector's live sharing: test_support_bot_pgvector.py)
        settings = settings_factory(
            tmp_path / name, database_url=postgres_url, vector_store="faiss"
        )
        return SupportBot(settings, encoder=encoder)

    a = replica("a")
    assert a.knowledge.store_kind == "faiss"
    a.create_tenant("shop")
    assert a.ingest_faq("shop", FAQ, "csv") == 3
    b = replica("b")
    assert b.load() == {"shop": "rebuilt"}  # nothing on b's disk: built from the database
    assert b.chat("shop", "s", "can I pay with a voucher?").citations[0]["id"] == "p2"
    b = replica("b")
    assert b.load() == {"shop": "loaded"}  # unchanged: b's saved index matches the database

    # a changes an entry in place (same primary key): b's saved index is stale by content
    a.upsert("shop", [EntryIn(id="p3", title="Do you sell kites?", body="Yes, stunt kites.")])
    b = replica("b")
    assert b.load() == {"shop": "rebuilt"}
    kites = b.chat("shop", "s2", "do you have kites?")
    assert kites.citations[0]["id"] == "p3" and "kites" in kites.text
    assert b.retrieve("shop", "floor and desk lamps")[0].entry.title == "Do you sell kites?"

    # deletes and new entries through a reach b at its next start too
    a.delete("shop", "p2")
    a.upsert("shop", [EntryIn(id="p4", title="Do you gift wrap?", body="Yes, for 3 euros.")])
    b = replica("b")
    assert b.load() == {"shop": "rebuilt"}
    ids = {c.entry.id for c in b.retrieve("shop", "voucher gift wrap", k=10)}
    assert "p4" in ids and "p2" not in ids
    assert len(b.index("shop")) == len(a.index("shop")) == 3

    # both replicas upserting the same ids at once: one row each, the same primary keys
    same = [EntryIn(id="p5", title="Do you repair bikes?", body="Yes, in our workshop.")]
    pks_a = a.store.upsert("shop", same)
    pks_b = b.store.upsert("shop", same)
    assert pks_a[0][0] == pks_b[0][0] and a.store.count("shop") == 4
    for bot in (a, b):
        bot.store.db.dispose()
