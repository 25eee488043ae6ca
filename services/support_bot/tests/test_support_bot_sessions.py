"""Sessions and the public widget key (it is in every page that embeds the widget): it reads a
transcript, and writes to a session opened by ``POST /v1/sessions``, only with that session's
token; admin keys need none. And ``GET /v1/whoami`` says what a key is."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def _read(client: TestClient, tenant: str, session: str, key: str, token: str | None = None) -> Any:
    headers = {"X-API-Key": key, **({"X-Session-Token": token} if token else {})}
    return client.get(
        f"/v1/sessions/{session}/messages", params={"tenant": tenant}, headers=headers
    )


def _chat(client: TestClient, key: str, tenant: str, session: str, message: str) -> None:
    r = client.post(
        "/v1/chat",
        json={"tenant": tenant, "session_id": session, "message": message},
        headers={"X-API-Key": key},
    )
    assert r.status_code == 200, r.text


def test_a_widget_key_reads_only_sessions_it_holds_the_token_of(
    client: TestClient, widget: str, demo_admin: str, make_tenant: Any, root_key: str
) -> None:
    made = client.post("/v1/sessions", json={"tenant": "demo"}, headers={"X-API-Key": widget})
    assert made.status_code == 201, made.text
    mine = made.json()
    assert mine["tenant"] == "demo" and mine["session_id"].startswith("w-")
    first = {"tenant": "demo", "session_id": mine["session_id"]}
    r = client.post(
        "/v1/chat",
        json={**first, "message": "my card 4111 1111 1111 1111 was charged"},
        headers={"X-API-Key": widget, "X-Session-Token": mine["session_token"]},
    )
    assert r.status_code == 200, r.text

    # nobody else writes into it with the public widget key: chat, stream or feedback
    into = {"tenant": "demo", "session_id": mine["session_id"], "message": "and my address?"}
    for path in ("/v1/chat", "/v1/chat/stream"):
        for token in (None, "forged"):
            headers = {"X-API-Key": widget, **({"X-Session-Token": token} if token else {})}
            assert client.post(path, json=into, headers=headers).status_code == 403, path
    rate = {"tenant": "demo", "session_id": mine["session_id"], "message_id": 1, "rating": "down"}
    assert client.post("/v1/feedback", json=rate, headers={"X-API-Key": widget}).status_code == 403
    holder = {"X-API-Key": widget, "X-Session-Token": mine["session_token"]}
    r = client.post("/v1/chat", json={**into, "message": "do you ship abroad?"}, headers=holder)
    assert r.status_code == 200, r.text
    _chat(client, demo_admin, "demo", mine["session_id"], "staff testing")  # admins need none

    # the token holder reads it; the tenant's admin and the service admin need no token
    r = _read(client, "demo", mine["session_id"], widget, mine["session_token"])
    assert r.status_code == 200 and [m["role"] for m in r.json()] == ["user", "bot"] * 3
    assert "and my address?" not in r.text  # the refused turns were never stored
    for key in (demo_admin, root_key):
        assert len(_read(client, "demo", mine["session_id"], key).json()) == 6

    # anyone else holding the public widget key and the session id gets nothing
    other = client.post("/v1/sessions", json={"tenant": "demo"}, headers={"X-API-Key": widget})
    theirs = other.json()
    assert theirs["session_id"] != mine["session_id"]
    assert theirs["session_token"] != mine["session_token"]
    for token in (None, "forged", theirs["session_token"], mine["session_token"] + "x"):
        r = _read(client, "demo", mine["session_id"], widget, token)
        assert r.status_code == 403, (token, r.text)
        assert "4111" not in r.text and "charged" not in r.text

    # a session id chosen by the client (the attack: a leaked id) is no better
    _chat(client, widget, "demo", "guessable-1", "my order number is 55512")
    assert _read(client, "demo", "guessable-1", widget).status_code == 403

    # the token is bound to its tenant: another tenant's widget key with it reads nothing
    isolated = make_tenant("sessions-other")
    r = _read(
        client, "sessions-other", mine["session_id"], isolated["widget_key"], mine["session_token"]
    )
    assert r.status_code == 403
    r = _read(client, "demo", mine["session_id"], isolated["widget_key"], mine["session_token"])
    assert r.status_code == 403  # a key of another tenant
    # and a widget key cannot open sessions for another tenant
    assert (
        client.post(
            "/v1/sessions", json={"tenant": "sessions-other"}, headers={"X-API-Key": widget}
        ).status_code
        == 403
    )


def test_whoami_names_the_key(
    client: TestClient, widget: str, demo_admin: str, root_key: str
) -> None:
    def who(key: str) -> Any:
        return client.get("/v1/whoami", headers={"X-API-Key": key})

    assert who(root_key).json() == {"role": "root", "tenant": None}
    assert who(demo_admin).json() == {"role": "admin", "tenant": "demo"}
    assert who(widget).json() == {"role": "widget", "tenant": "demo"}
    assert who("sk_nope").status_code == 401
    assert client.get("/v1/whoami").status_code == 401


def test_keys_and_tokens_with_any_header_text_are_refused_not_a_500(
    client: TestClient, widget: str
) -> None:
    # header values arrive as latin-1 text: a non-ASCII one must compare, not raise
    for value in ("cl\u00e9", "\u00ff" * 40):
        raw = value.encode("latin-1")
        r = client.get("/v1/whoami", headers=[(b"X-API-Key", raw)])
        assert r.status_code == 401, r.text
        r = client.get(
            "/v1/sessions/s-1/messages",
            params={"tenant": "demo"},
            headers=[(b"X-API-Key", widget.encode()), (b"X-Session-Token", raw)],
        )
        assert r.status_code == 403, r.text
