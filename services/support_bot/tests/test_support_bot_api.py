"""HTTP API: answers, keys and tenant isolation, ingestion errors, upserts, handoffs,
streaming, feedback, redaction, session memory."""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, HTTPServer
from threading import Event, Thread
from typing import Any

from fastapi.testclient import TestClient

ROOT_KEY = "test-root-key"  # the service admin key the fixtures configure


def chat(client: TestClient, key: str, message: str, session: str = "s1", tenant: str = "demo"):
    return client.post(
        "/v1/chat",
        json={"tenant": tenant, "session_id": session, "message": message},
        headers={"X-API-Key": key},
    )


def test_answer_cites_the_right_entry(client: TestClient, widget: str) -> None:
    r = chat(client, widget, "can I pay later with an invoice?", "answer-1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "answer"
    assert body["citations"][0]["id"] == "pay-002"
    assert body["citations"][0]["url"].startswith("https://shop.larkspur.example/")
    assert "Klarna" in body["text"]


def test_document_passages_are_answered_with_headings(client: TestClient, widget: str) -> None:
    body = chat(client, widget, "how do I remove a grease stain from my sofa", "doc-1").json()
    ids = [c["id"] for c in body["citations"]]
    assert any(i.startswith("sofa-care#") for i in ids), body
    cite = next(c for c in body["citations"] if c["id"].startswith("sofa-care#"))
    assert cite["title"] == "Sofa care and cleaning" and cite["heading"] == "Removing stains"


def test_out_of_scope_is_handed_off_and_staff_reply_lands(
    client: TestClient, widget: str, demo_admin: str, sample: dict
) -> None:
    from verticals.support_bot.api import session_token

    r = chat(client, widget, "who won the football match yesterday?", "handoff-1")
    body = r.json()
    assert body["kind"] == "handoff" and body["handoff_id"]
    admin = {"X-API-Key": demo_admin}
    listed = client.get("/v1/handoffs", params={"tenant": "demo", "status": "open"}, headers=admin)
    assert body["handoff_id"] in [h["id"] for h in listed.json()]
    reply = client.post(
        f"/v1/handoffs/{body['handoff_id']}/reply",
        json={"tenant": "demo", "text": "Sorry, we only know about our shop.", "close": True},
        headers=admin,
    )
    assert reply.status_code == 200, reply.text
    token = session_token(sample["settings"], "demo", "handoff-1")
    messages = client.get(
        "/v1/sessions/handoff-1/messages",
        params={"tenant": "demo"},
        headers={"X-API-Key": widget, "X-Session-Token": token},
    ).json()
    assert [m["role"] for m in messages] == ["user", "bot", "staff"]
    closed = client.get(
        "/v1/handoffs", params={"tenant": "demo", "status": "closed"}, headers=admin
    )
    assert body["handoff_id"] in [h["id"] for h in closed.json()]
    # the widget key cannot see the queue or answer it
    assert (
        client.get(
            "/v1/handoffs", params={"tenant": "demo"}, headers={"X-API-Key": widget}
        ).status_code
        == 403
    )


def test_staff_resolution_becomes_feedback(client: TestClient, widget: str, sample: dict) -> None:
    body = chat(client, widget, "what is the airspeed velocity of a swallow", "handoff-2").json()
    assert body["kind"] == "handoff"
    r = client.post(
        f"/v1/handoffs/{body['handoff_id']}/reply",
        json={"tenant": "demo", "text": "See our shipping page", "entry_id": "shp-005"},
        headers={"X-API-Key": ROOT_KEY},
    )
    assert r.status_code == 200
    rows = [f for f in sample["bot"].store.feedback("demo") if f.rating == "resolved"]
    assert rows[-1].entry_id == "shp-005" and "swallow" in rows[-1].query
    bad = client.post(
        f"/v1/handoffs/{body['handoff_id']}/reply",
        json={"tenant": "demo", "text": "x", "entry_id": "no-such-entry"},
        headers={"X-API-Key": ROOT_KEY},
    )
    assert bad.status_code == 400 and "no-such-entry" in bad.json()["detail"]


def test_webhook_receives_handoffs(tmp_path: Any, encoder: Any, settings_factory: Any) -> None:
    from verticals.support_bot.pipeline import SupportBot

    received: list[dict] = []
    delivered = Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()
            delivered.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)  # the kernel picks the port: no race
    port = server.server_address[1]
    Thread(target=server.handle_request, daemon=True).start()
    settings = settings_factory(tmp_path, webhook_url=f"http://127.0.0.1:{port}/hook")
    bot = SupportBot(settings, encoder=encoder, persist=False)
    bot.create_tenant("hooks")
    reply = bot.chat("hooks", "s", "anything at all?")  # empty knowledge base: hand off
    assert reply.kind == "handoff"
    assert delivered.wait(30), "the webhook was not called"
    server.server_close()
    assert received[0]["id"] == reply.handoff_id and received[0]["tenant"] == "hooks"


def test_streaming_sends_the_same_answer(client: TestClient, widget: str) -> None:
    payload = {
        "tenant": "demo",
        "session_id": "stream-1",
        "message": "How long does delivery take?",
    }
    with client.stream("POST", "/v1/chat/stream", json=payload, headers={"X-API-Key": widget}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    events = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    names = [e for e, _ in events]
    assert names[0] == "meta" and names[-1] == "done" and names.count("delta") >= 3
    done = events[-1][1]
    assert "".join(d["text"] for e, d in events if e == "delta") == done["text"]
    assert done["citations"][0]["id"] == "shp-001" and events[0][1]["kind"] == "answer"


def test_keys_and_tenant_isolation(
    client: TestClient, widget: str, demo_admin: str, make_tenant: Any, sample: dict
) -> None:
    from verticals.support_bot.api import session_token

    other = make_tenant("isolated")
    oa = {"X-API-Key": other["admin_key"]}
    r = client.post(
        "/v1/tenants/isolated/faq",
        json={
            "entries": [
                {"id": "x1", "question": "Do you sell bicycles?", "answer": "Only blue ones."}
            ]
        },
        headers=oa,
    )
    assert r.status_code == 200, r.text
    # another tenant's admin key reads nothing of demo
    assert client.get("/v1/tenants/demo/entries", headers=oa).status_code == 403
    assert client.get("/v1/tenants/demo/entries/pay-002", headers=oa).status_code == 403
    assert client.get("/v1/handoffs", params={"tenant": "demo"}, headers=oa).status_code == 403
    assert chat(client, other["admin_key"], "hello", tenant="demo").status_code == 403
    assert (
        client.get(
            "/v1/sessions/answer-1/messages", params={"tenant": "demo"}, headers=oa
        ).status_code
        == 403
    )
    # demo's widget key cannot touch the other tenant, nor admin its own
    assert chat(client, widget, "bicycles?", tenant="isolated").status_code == 403
    assert client.get("/v1/tenants/demo/entries", headers={"X-API-Key": widget}).status_code == 403
    assert (
        client.post(
            "/v1/tenants/demo/faq",
            json={"entries": [{"id": "evil", "question": "q", "answer": "a"}]},
            headers={"X-API-Key": widget},
        ).status_code
        == 403
    )
    # a same-session id in another tenant never sees the other tenant's transcript
    body = chat(client, other["widget_key"], "do you sell bicycles", "answer-1", "isolated").json()
    assert [c["id"] for c in body["citations"]] == ["x1"]
    token = session_token(sample["settings"], "isolated", "answer-1")
    msgs = client.get(
        "/v1/sessions/answer-1/messages",
        params={"tenant": "isolated"},
        headers={"X-API-Key": other["widget_key"], "X-Session-Token": token},
    ).json()
    assert all("invoice" not in m["text"] for m in msgs) and len(msgs) == 2
    # retrieval never crosses tenants: a demo question in the other tenant finds only x1
    body = chat(
        client, other["widget_key"], "How long does delivery take?", "t2", "isolated"
    ).json()
    assert {c["id"] for c in body["citations"]} <= {"x1"}
    # keys: missing, wrong
    assert client.get("/v1/tenants/demo/entries").status_code == 401
    assert client.get("/v1/tenants/demo/entries", headers={"X-API-Key": "nope"}).status_code == 401
    assert (
        client.get("/v1/tenants/demo/entries", headers={"X-API-Key": demo_admin}).status_code == 200
    )


def test_ingestion_errors_store_nothing(client: TestClient, sample: dict, make_tenant: Any) -> None:
    keys = make_tenant("errors")
    h = {"X-API-Key": keys["admin_key"], "Content-Type": "text/csv"}
    store = sample["bot"].store
    # missing required column
    r = client.post("/v1/tenants/errors/faq/import", content="id,question\na,b\n", headers=h)
    assert r.status_code == 400 and "answer" in r.json()["detail"]
    # one bad row among good ones: nothing is stored
    csv_text = "id,question,answer\ng1,Good question?,Good answer.\nbad id!,Q?,\n"
    r = client.post("/v1/tenants/errors/faq/import", content=csv_text, headers=h)
    assert r.status_code == 400
    assert "row 2" in r.json()["detail"] and "missing answer" in r.json()["detail"]
    # a ragged row
    r = client.post(
        "/v1/tenants/errors/faq/import", content='id,question,answer\nx,"q",a,extra\n', headers=h
    )
    assert r.status_code == 400 and "row 1" in r.json()["detail"]
    # not UTF-8
    r = client.post(
        "/v1/tenants/errors/faq/import", content=b"id,question,answer\n\xff,q,a\n", headers=h
    )
    assert r.status_code == 400
    assert store.count("errors") == 0 and len(sample["bot"].index("errors")) == 0
    # unknown tenant: 404 for the service admin, 403 for a tenant key
    r = client.post(
        "/v1/tenants/ghost/faq/import",
        content="id,question,answer\na,b,c\n",
        headers={"X-API-Key": ROOT_KEY, "Content-Type": "text/csv"},
    )
    assert r.status_code == 404 and "ghost" in r.json()["detail"]
    assert store.tenant("ghost") is None and store.count("ghost") == 0
    r = client.post(
        "/v1/tenants/ghost/faq/import", content="id,question,answer\na,b,c\n", headers=h
    )
    assert r.status_code == 403
    # oversize body and oversize message
    big = "id,question,answer\n" + "a,b," + "x" * 1_100_000 + "\n"
    r = client.post("/v1/tenants/errors/faq/import", content=big, headers=h)
    assert r.status_code == 413 and "bytes" in r.json()["detail"]
    before = len(store.recent_messages("errors", "big", 10))
    r = chat(client, keys["widget_key"], "x" * 5000, "big", "errors")
    assert r.status_code == 400 and "2000" in r.json()["detail"]
    assert len(store.recent_messages("errors", "big", 10)) == before == 0
    # a valid file then works
    r = client.post(
        "/v1/tenants/errors/faq/import", content="id,question,answer\na,b?,c.\n", headers=h
    )
    assert r.status_code == 200 and r.json()["count"] == 1


def test_upsert_update_and_delete_without_rebuild(
    client: TestClient, sample: dict, make_tenant: Any
) -> None:
    keys = make_tenant("crud")
    admin = {"X-API-Key": keys["admin_key"]}
    entries = [
        {"id": "a", "question": "Do you sell garden furniture?", "answer": "Yes, teak benches."},
        {"id": "b", "question": "Can I pay with bitcoin?", "answer": "No, we do not take crypto."},
    ]
    assert (
        client.post("/v1/tenants/crud/faq", json={"entries": entries}, headers=admin).json()[
            "count"
        ]
        == 2
    )
    index = sample["bot"].index("crud")
    assert len(index) == 2
    ask = lambda q: chat(client, keys["widget_key"], q, f"c{len(q)}", "crud").json()  # noqa: E731
    assert ask("garden furniture for sale?")["citations"][0]["id"] == "a"
    entries[0]["answer"] = "Yes, teak benches and oak tables."
    client.post("/v1/tenants/crud/faq", json={"entries": entries[:1]}, headers=admin)
    assert len(index) == 2  # updated in place, same id
    assert "oak" in ask("do you have garden furniture to sell")["text"]
    assert client.delete("/v1/tenants/crud/entries/a", headers=admin).json()["count"] == 1
    assert len(index) == 1
    assert client.get("/v1/tenants/crud/entries/a", headers=admin).status_code == 404
    assert client.delete("/v1/tenants/crud/entries/a", headers=admin).status_code == 404
    listed = client.get("/v1/tenants/crud/entries", headers=admin).json()
    assert [e["id"] for e in listed] == ["b"]
    # documents: passages keep headings; re-ingesting replaces them; delete by document id
    doc = "# Care guide\n\n## Wood\nOil teak twice a year.\n\n## Metal\nWipe with a damp cloth."
    r = client.post(
        "/v1/tenants/crud/documents", json={"id": "care", "content": doc}, headers=admin
    )
    assert r.json()["count"] == 2
    passages = client.get(
        "/v1/tenants/crud/entries", params={"kind": "passage"}, headers=admin
    ).json()
    assert [(p["id"], p["title"], p["heading"]) for p in passages] == [
        ("care#1", "Care guide", "Wood"),
        ("care#2", "Care guide", "Metal"),
    ]
    r = client.post(
        "/v1/tenants/crud/documents",
        json={"id": "care", "content": "<h1>Care</h1><p>Oil it.</p>", "format": "html"},
        headers=admin,
    )
    assert r.json()["count"] == 1 and len(index) == 2
    assert client.delete("/v1/tenants/crud/entries/care", headers=admin).json()["count"] == 1
    assert len(index) == 1
    assert client.post("/v1/tenants/crud/rebuild", headers=admin).json()["count"] == 1


def test_feedback_is_stored(client: TestClient, widget: str, sample: dict) -> None:
    body = chat(client, widget, "do you take Apple Pay", "fb-1").json()
    r = client.post(
        "/v1/feedback",
        json={
            "tenant": "demo",
            "session_id": "fb-1",
            "message_id": body["message_id"],
            "rating": "up",
        },
        headers={"X-API-Key": widget},
    )
    assert r.status_code == 201
    row = sample["bot"].store.feedback("demo")[-1]
    assert (row.rating, row.entry_id, row.query) == ("up", "pay-001", "do you take Apple Pay")
    # another session cannot rate this message
    r = client.post(
        "/v1/feedback",
        json={
            "tenant": "demo",
            "session_id": "fb-2",
            "message_id": body["message_id"],
            "rating": "down",
        },
        headers={"X-API-Key": widget},
    )
    assert r.status_code == 404


def test_pii_is_redacted_in_transcripts_and_logs(
    client: TestClient, widget: str, sample: dict, caplog: Any
) -> None:
    text = (
        "my email is jane.doe@example.com, phone +49 170 1234567, card 4111 1111 1111 1111, refund?"
    )
    with caplog.at_level(logging.INFO, logger="verticals.support_bot"):
        assert chat(client, widget, text, "pii-1").status_code == 200
    stored = sample["bot"].store.recent_messages("demo", "pii-1", 5)[0].text
    for secret in ("jane.doe@example.com", "1234567", "4111"):
        assert secret not in stored
        assert all(secret not in str(getattr(r, "fields", "")) for r in caplog.records)
    assert "[email]" in stored and "[phone]" in stored and "[card]" in stored


def test_follow_up_uses_the_previous_turn(client: TestClient, widget: str) -> None:
    follow_up = "and how long does that take?"
    first = chat(client, widget, "Which countries do you ship to?", "mem-1").json()
    assert first["citations"][0]["id"] == "shp-004"
    shipping = chat(client, widget, follow_up, "mem-1").json()
    chat(client, widget, "How do I return an item?", "mem-2")
    returns = chat(client, widget, follow_up, "mem-2").json()
    assert shipping["citations"][0]["id"] == "shp-001"  # delivery times
    assert returns["citations"][0]["id"][:4] in {"ret-", "ref-"}


def test_widget_and_demo_page_are_served(client: TestClient, widget: str) -> None:
    js = client.get("/widget.js")
    assert (
        js.status_code == 200
        and "text/event-stream" not in js.text
        and "/v1/chat/stream" in js.text
    )
    page = client.get("/").text
    assert 'src="/widget.js"' in page and widget in page


def test_concurrent_chats_all_succeed_and_are_stored(sample: dict) -> None:
    """Many threads reading session memory and writing turns at once on SQLite: no request
    fails on a locked database, and every turn is stored in its session."""
    from concurrent.futures import ThreadPoolExecutor

    bot = sample["bot"]
    questions = ["do you ship to Iceland?", "and how long does that take?", "can I pay later?"]

    def session(n: int) -> list[int]:
        return [bot.chat("demo", f"load-{n}", q).message_id for q in questions]

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(session, range(24)))
    assert all(len(ids) == 3 and all(ids) for ids in results)
    stored = bot.store.recent_messages("demo", "load-7", 10)
    assert [m.role for m in stored] == ["user", "bot"] * 3
