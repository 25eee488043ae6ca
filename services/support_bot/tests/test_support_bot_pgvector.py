"""Entry metadata and filtered retrieval (FAISS on SQLite, pgvector on PostgreSQL), and the
pgvector store on real servers: two replicas answering each other's writes at once, a
streaming read replica serving searches, and a crash of the primary during an ingest."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from verticals.serving.testing import LiveServer, PostgresServer

FAQ = [
    {
        "id": "kettle-clean",
        "question": "How do I clean the kettle?",
        "answer": "Boil a mix of water and vinegar, then rinse twice.",
        "category": "care",
        "metadata": {"product": "kettle", "lang": "en"},
    },
    {
        "id": "lamp-clean",
        "question": "How do I clean the lamp shade?",
        "answer": "Dust the shade with a dry brush; never use water.",
        "category": "care",
        "tags": ["fabric"],
        "metadata": {"product": "lamp", "lang": "en"},
    },
    {
        "id": "kettle-warranty",
        "question": "How long is the kettle warranty?",
        "answer": "Two years from the date of purchase.",
        "category": "warranty",
        "metadata": {"product": "kettle", "lang": "en"},
    },
]


def wait_for(check: Any, timeout: float, every: float = 0.02) -> float:
    """Seconds until ``check()`` is true (fails past ``timeout``)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(every)
    return time.monotonic() - started


@pytest.fixture(params=["faiss", "pgvector"])
def store_client(
    request: pytest.FixtureRequest, tmp_path: Path, encoder: Any, settings_factory: Any
) -> Iterator[tuple[TestClient, str]]:
    """The API on FAISS (SQLite) or pgvector (PostgreSQL, started only for that case)."""
    from verticals.support_bot.api import build_app
    from verticals.support_bot.pipeline import SupportBot

    overrides: dict[str, Any] = {}
    if request.param == "pgvector":
        overrides = {"database_url": request.getfixturevalue("postgres_url")}
    settings = settings_factory(tmp_path, **overrides)
    bot = SupportBot(settings, encoder=encoder)
    assert bot.knowledge.store_kind == request.param
    with TestClient(build_app(settings, bot)) as client:
        yield client, request.param
    bot.store.db.dispose()


def test_metadata_is_stored_and_filters_narrow_chat_and_search(
    store_client: tuple[TestClient, str], root_key: str
) -> None:
    client, kind = store_client
    root = {"X-API-Key": root_key}
    keys = client.post("/v1/tenants", json={"id": "home"}, headers=root).json()
    admin, widget = {"X-API-Key": keys["admin_key"]}, {"X-API-Key": keys["widget_key"]}
    r = client.post("/v1/tenants/home/faq", json={"entries": FAQ}, headers=admin)
    assert r.status_code == 200, r.text
    doc = "# Lamp bulbs\n\nThe lamp takes one E27 bulb of at most 40 watts.\n"
    r = client.post(
        "/v1/tenants/home/documents",
        json={
            "id": "lamp-guide",
            "content": doc,
            "category": "guides",
            "metadata": {"doc": "manual"},
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert client.get("/v1/tenants/home", headers=admin).json()["vector_store"] == kind

    entries = {e["id"]: e for e in client.get("/v1/tenants/home/entries", headers=admin).json()}
    assert entries["kettle-clean"]["metadata"] == {"product": "kettle", "lang": "en"}
    assert entries["lamp-guide#1"]["metadata"] == {"doc": "manual"}
    assert entries["lamp-guide#1"]["category"] == "guides"

    question = "how do I clean the kettle?"
    ask = {"tenant": "home", "message": question}
    plain = client.post("/v1/chat", json={**ask, "session_id": "a"}, headers=widget).json()
    assert plain["citations"][0]["id"] == "kettle-clean"
    # the same question on the lamp's product page: only lamp entries may answer
    lamp = client.post(
        "/v1/chat",
        json={**ask, "session_id": "b", "filter": {"product": "lamp"}},
        headers=widget,
    ).json()
    assert [c["id"] for c in lamp["citations"]][:1] == ["lamp-clean"], lamp

    def search(body: dict[str, Any]) -> httpx.Response:
        return client.post("/v1/tenants/home/search", json=body, headers=admin)

    found = search({"question": question, "k": 10, "filter": {"product": "lamp"}}).json()
    assert {c["entry_id"] for c in found["candidates"]} == {"lamp-clean"}
    found = search({"question": question, "k": 10, "filter": {"tags": "fabric"}}).json()
    assert [c["entry_id"] for c in found["candidates"]] == ["lamp-clean"]
    found = search({"question": "bulb watts", "k": 10, "filter": {"category": "guides"}}).json()
    assert [c["entry_id"] for c in found["candidates"]] == ["lamp-guide#1"]
    both = {"product": "kettle", "category": "warranty"}
    found = search({"question": question, "k": 10, "filter": both}).json()
    assert [c["entry_id"] for c in found["candidates"]] == ["kettle-warranty"]
    nothing = search({"question": question, "k": 10, "filter": {"product": "sofa"}}).json()
    assert nothing["candidates"] == [] and nothing["decision"] == "handoff"
    unfiltered = search({"question": question, "k": 10}).json()
    assert len(unfiltered["candidates"]) == 4

    # bad filters and metadata: a clear 422 (or 400), nothing stored
    for bad in ({"product": 3}, {"bad key!": "x"}, {str(i): "x" for i in range(21)}, ["x"]):
        r = client.post("/v1/chat", json={**ask, "session_id": "c", "filter": bad}, headers=widget)
        assert r.status_code == 422 and "filter" in r.text, r.text
        assert search({"question": question, "filter": bad}).status_code == 422
    for meta in ({"category": "x"}, {"n": 1}):
        entry = {"id": "bad", "question": "q?", "answer": "a.", "metadata": meta}
        r = client.post("/v1/tenants/home/faq", json={"entries": [entry]}, headers=admin)
        assert r.status_code in (400, 422) and "metadata" in r.text, r.text
    assert client.get("/v1/tenants/home/entries/bad", headers=admin).status_code == 404
    jsonl = '{"id": "m1", "question": "q?", "answer": "a.", "metadata": {"kind": "x"}}\n'
    r = client.post(
        "/v1/tenants/home/faq/import?format=jsonl", content=jsonl.encode(), headers=admin
    )
    assert r.status_code == 400 and "kind" in r.text, r.text


# -- pgvector on real servers ------------------------------------------------------------------


def replica_bot(tmp: Path, url: str, encoder: Any, settings_factory: Any) -> Any:
    from verticals.support_bot.pipeline import SupportBot

    bot = SupportBot(settings_factory(tmp, database_url=url), encoder=encoder)
    assert bot.knowledge.store_kind == "pgvector"
    bot.load()
    return bot


def test_two_replicas_answer_each_others_writes_within_a_second(
    tmp_path: Path, encoder: Any, settings_factory: Any, root_key: str, postgres_url: str
) -> None:
    from verticals.support_bot.api import build_app

    a = replica_bot(tmp_path / "a", postgres_url, encoder, settings_factory)
    keys = a.create_tenant("shop")
    a.upsert("shop", [])  # nothing yet
    b = replica_bot(tmp_path / "b", postgres_url, encoder, settings_factory)
    widget = {"X-API-Key": keys[1]}
    with LiveServer(build_app(a.settings, a)) as sa, LiveServer(build_app(b.settings, b)) as sb:
        admin = {"X-API-Key": keys[0]}
        entry = {"id": "kites", "question": "Do you sell kites?", "answer": "Yes, stunt kites."}
        ask = {"tenant": "shop", "message": "do you have kites?"}

        def b_cites(entry_id: str) -> bool:
            r = httpx.post(f"{sb.url}/v1/chat", json={**ask, "session_id": "s"}, headers=widget)
            assert r.status_code == 200, r.text
            return [c["id"] for c in r.json()["citations"]][:1] == [entry_id]

        assert not b_cites("kites")
        r = httpx.post(f"{sa.url}/v1/tenants/shop/faq", json={"entries": [entry]}, headers=admin)
        assert r.status_code == 200, r.text
        assert wait_for(lambda: b_cites("kites"), timeout=1.0) < 1.0
        # a delete through b is gone from a's answers as fast
        r = httpx.delete(f"{sb.url}/v1/tenants/shop/entries/kites", headers=admin)
        assert r.status_code == 200, r.text
        a_ask = {**ask, "session_id": "t"}
        wait_for(
            lambda: (
                not httpx.post(f"{sa.url}/v1/chat", json=a_ask, headers=widget).json()["citations"]
            ),
            timeout=1.0,
        )
    # neither replica wrote an index folder: the vectors are in the database
    assert not (tmp_path / "a" / "support_index").exists()
    for bot in (a, b):
        bot.store.db.dispose()


def test_a_streaming_read_replica_serves_searches(
    tmp_path: Path, encoder: Any, settings_factory: Any, root_key: str, postgres: PostgresServer
) -> None:
    from verticals.support_bot.api import build_app
    from verticals.support_bot.text import EntryIn

    name = postgres.create_database()
    standby = postgres.replica()
    try:
        primary = replica_bot(tmp_path / "p", postgres.url(name), encoder, settings_factory)
        primary.create_tenant("shop")
        primary.upsert("shop", [EntryIn(id="lamps", title="Do you sell lamps?", body="Yes.")])
        url = standby.url(name)
        from sqlalchemy import create_engine, text

        engine = create_engine(url)

        def replicated(count: int) -> bool:
            try:
                with engine.connect() as conn:
                    sql = "SELECT count(*) FROM support_vectors"
                    return bool(conn.execute(text(sql)).scalar() == count)
            except Exception:  # the database or table not replayed yet
                return False

        wait_for(lambda: replicated(2), timeout=30, every=0.05)
        reader = replica_bot(tmp_path / "r", url, encoder, settings_factory)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar()
        with LiveServer(build_app(reader.settings, reader)) as server:

            def top(question: str) -> str | None:
                r = httpx.post(
                    f"{server.url}/v1/tenants/shop/search",
                    json={"question": question, "k": 3},
                    headers={"X-API-Key": root_key},
                )
                assert r.status_code == 200, r.text
                found = r.json()["candidates"]
                return found[0]["entry_id"] if found else None

            assert top("lamps for sale?") == "lamps"
            # a write on the primary reaches the replica's searches once replayed
            primary.upsert("shop", [EntryIn(id="rugs", title="Do you sell rugs?", body="Yes.")])
            wait_for(lambda: top("wool rugs?") == "rugs", timeout=10)
        engine.dispose()
        for bot in (primary, reader):
            bot.store.db.dispose()
    finally:
        standby.stop()
        postgres.drop_database(name)


def test_primary_killed_during_an_ingest_leaves_entries_and_vectors_in_step(
    tmp_path: Path, encoder: Any, settings_factory: Any, postgres: PostgresServer
) -> None:
    from sqlalchemy import create_engine, text

    from verticals.support_bot.text import EntryIn

    server = PostgresServer(postgres.bin_dir, durable=True).start()  # its own: it is killed
    try:
        url = server.url(server.create_database())
        bot = replica_bot(tmp_path / "a", url, encoder, settings_factory)
        bot.create_tenant("shop")
        batch, done, failed = 8, [0], []

        def ingest() -> None:
            try:
                for n in range(500):
                    bot.upsert(
                        "shop",
                        [
                            EntryIn(id=f"e{n}-{i}", title=f"Question {n} {i}?", body=f"Answer {i}.")
                            for i in range(batch)
                        ],
                    )
                    done[0] = n + 1
            except Exception as exc:  # the server went away mid-ingest
                failed.append(exc)

        worker = threading.Thread(target=ingest, daemon=True)
        worker.start()
        wait_for(lambda: done[0] >= 2, timeout=60)
        # the crash lands mid-write, deterministically: another session holds a lock that
        # makes the next vector insert wait, and the server dies while it waits
        locker = create_engine(url).connect()
        locker.execute(text("LOCK TABLE support_vectors IN SHARE ROW EXCLUSIVE MODE"))
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO support_vectors%'"
        )
        watcher = create_engine(url, isolation_level="AUTOCOMMIT").connect()  # fresh snapshots
        wait_for(lambda: bool(watcher.execute(waiting).scalar()), timeout=60, every=0.05)
        server.kill()
        worker.join(60)
        assert failed, "the ingest did not notice the crash"
        locker.invalidate()
        watcher.invalidate()
        bot.store.db.dispose()
        server.restart()
        engine = create_engine(url)
        with engine.connect() as conn:
            entries = conn.execute(text("SELECT pk FROM support_entries")).scalars().all()
            keys = conn.execute(text("SELECT key FROM support_vectors")).scalars().all()
        engine.dispose()
        # every acknowledged batch is there, and nothing of the one in flight
        assert len(entries) == done[0] * batch, (len(entries), done)
        assert sorted(keys) == sorted(k for pk in entries for k in (2 * pk, 2 * pk + 1))
        again = replica_bot(tmp_path / "b", url, encoder, settings_factory)
        assert len(again.index("shop")) == len(entries)
        assert again.retrieve("shop", "Question 1 2?")[0].entry.id == "e1-2"
        again.store.db.dispose()
    finally:
        server.stop()


def test_a_database_from_before_metadata_gets_the_column(tmp_path: Path) -> None:
    """An existing support_entries table without ``meta`` (the first schema) is upgraded at
    start, its rows kept, and takes metadata."""
    from sqlalchemy import text

    from verticals.support_bot.store import Store
    from verticals.support_bot.text import EntryIn

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url)
    old.create_tenant("shop", "", "a" * 64, "b" * 64)
    old.upsert("shop", [EntryIn(id="e1", title="Q?", body="A.")])
    with old.db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE support_entries DROP COLUMN meta"))
    old.db.dispose()
    new = Store(url)
    assert new.entry("shop", "e1") is not None
    new.upsert("shop", [EntryIn(id="e2", title="Q2?", body="A2.", metadata={"lang": "en"})])
    row = new.entry("shop", "e2")
    assert row is not None and row.to_entry().metadata == {"lang": "en"}
    new.db.dispose()
