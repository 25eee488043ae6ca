"""What the widget needs beyond chat: its start-up call (suggestions, and the key checked at
load) and "talk to a person"."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_widget_config_suggests_questions_and_checks_the_key(
    client: TestClient, widget: str, sample: dict
) -> None:
    r = client.get("/v1/widget", params={"tenant": "demo"}, headers={"X-API-Key": widget})
    assert r.status_code == 200, r.text
    body = r.json()
    faqs = {e.title: e.category for e in sample["bot"].store.entries("demo", "faq")}
    assert len(body["suggestions"]) == 3
    assert all(q in faqs for q in body["suggestions"])  # real questions of the base
    assert len({faqs[q] for q in body["suggestions"]}) == 3  # from three categories
    bad = client.get("/v1/widget", params={"tenant": "demo"}, headers={"X-API-Key": "wk_nope"})
    assert bad.status_code == 401 and bad.json()["detail"] == "invalid X-API-Key"
    other = client.get("/v1/widget", params={"tenant": "other"}, headers={"X-API-Key": widget})
    assert other.status_code == 403
    assert client.get("/v1/widget", headers={"X-API-Key": widget}).status_code == 422


def new_session(client: TestClient, widget: str) -> dict:
    r = client.post("/v1/sessions", json={"tenant": "demo"}, headers={"X-API-Key": widget})
    assert r.status_code == 201, r.text
    return r.json()


def test_talk_to_a_person_opens_one_handoff_with_the_transcript(
    client: TestClient, widget: str, demo_admin: str
) -> None:
    s = new_session(client, widget)
    headers = {"X-API-Key": widget, "X-Session-Token": s["session_token"]}
    ask = {"tenant": "demo", "session_id": s["session_id"]}
    r = client.post(
        "/v1/chat", json={**ask, "message": "How do I return an item?"}, headers=headers
    )
    assert r.status_code == 200 and r.json()["kind"] == "answer"

    opened = client.post("/v1/handoffs", json=ask, headers=headers)
    assert opened.status_code == 201, opened.text
    handoff_id = opened.json()["handoff_id"]
    again = client.post("/v1/handoffs", json={**ask, "message": "hello?"}, headers=headers)
    assert again.status_code == 201 and again.json()["handoff_id"] == handoff_id

    queue = client.get(
        "/v1/handoffs",
        params={"tenant": "demo", "status": "open", "transcript": True},
        headers={"X-API-Key": demo_admin},
    ).json()
    mine = next(h for h in queue if h["id"] == handoff_id)
    assert mine["question"] == "How do I return an item?"
    assert mine["reason"] == "asked for a person"
    texts = [(m["role"], m["text"]) for m in mine["transcript"]]
    assert texts[0] == ("user", "How do I return an item?")
    assert ("user", "I would like to talk to a person.") in texts and ("user", "hello?") in texts
    assert texts[-1][0] == "bot" and "support team" in texts[-1][1]


def test_talk_to_a_person_refuses_bad_requests(client: TestClient, widget: str) -> None:
    s = new_session(client, widget)
    ask = {"tenant": "demo", "session_id": s["session_id"]}
    no_token = client.post("/v1/handoffs", json=ask, headers={"X-API-Key": widget})
    assert no_token.status_code == 403 and "X-Session-Token" in no_token.json()["detail"]
    headers = {"X-API-Key": widget, "X-Session-Token": s["session_token"]}
    too_long = client.post("/v1/handoffs", json={**ask, "message": "x" * 2001}, headers=headers)
    assert too_long.status_code == 422
    bad_session = client.post(
        "/v1/handoffs", json={"tenant": "demo", "session_id": "a b"}, headers=headers
    )
    assert bad_session.status_code == 422
