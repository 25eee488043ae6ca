"""``POST /v1/tenants/{tenant}/search``: the dashboard's "test a question" panel."""

from __future__ import annotations

from fastapi.testclient import TestClient


def search(client: TestClient, key: str, body: dict, tenant: str = "demo") -> dict:
    r = client.post(f"/v1/tenants/{tenant}/search", json=body, headers={"X-API-Key": key})
    return {"status": r.status_code, **r.json()}


def test_search_shows_what_the_chat_would_answer(
    client: TestClient, demo_admin: str, widget: str
) -> None:
    question = "can I pay later with an invoice?"
    found = search(client, demo_admin, {"question": question, "k": 3})
    assert found["status"] == 200, found
    chat = client.post(
        "/v1/chat",
        json={"tenant": "demo", "session_id": "search-1", "message": question},
        headers={"X-API-Key": widget},
    ).json()
    assert found["decision"] == chat["kind"] == "answer"
    assert found["confidence"] == chat["confidence"]
    top = found["candidates"][0]
    assert top["entry_id"] == chat["citations"][0]["id"] == "pay-002"
    assert "Klarna" in top["answer"] and top["question"]
    assert len(found["candidates"]) == 3
    scores = [c["score"] for c in found["candidates"]]
    assert scores[0] >= found["threshold"] and all(-1 <= s <= 1 for s in scores)
    assert {"cosine", "fused", "prob"} <= top.keys()


def test_search_hands_off_out_of_scope_and_stores_nothing(
    client: TestClient, demo_admin: str, sample: dict
) -> None:
    before = len(sample["bot"].store.handoffs("demo"))
    found = search(client, demo_admin, {"question": "what is the capital of Mongolia?"})
    assert found["decision"] == "handoff" and found["confidence"] < found["threshold"]
    assert len(sample["bot"].store.handoffs("demo")) == before


def test_search_refuses_bad_input_and_other_keys(
    client: TestClient, demo_admin: str, widget: str, root_key: str
) -> None:
    assert search(client, widget, {"question": "returns"})["status"] == 403
    assert search(client, root_key, {"question": "returns"})["status"] == 200
    assert search(client, root_key, {"question": "x"}, tenant="nope")["status"] == 404
    for bad in (
        {"question": ""},
        {"question": "   "},
        {"question": "a", "k": 0},
        {"question": "a", "k": 51},
        {},
    ):
        assert search(client, demo_admin, bad)["status"] == 422, bad
