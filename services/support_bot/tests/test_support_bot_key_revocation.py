"""Key revocation across replicas: two support-bot apps (each its own ``SupportBot``, so no
in-process state is shared) on one database; keys rotated through replica A stop working on
replica B within a second, for chat and for knowledge-base writes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

REVOKED_WITHIN_S = 1.0


def _replicas(
    tmp_path: Path, encoder: Any, settings_factory: Any, url: str
) -> Iterator[tuple[TestClient, TestClient]]:
    from verticals.support_bot.api import build_app
    from verticals.support_bot.pipeline import SupportBot

    with ExitStack() as stack:
        clients = []
        for name in ("a", "b"):
            settings = settings_factory(tmp_path / name, database_url=url)
            bot = SupportBot(settings, encoder=encoder)
            clients.append(stack.enter_context(TestClient(build_app(settings, bot))))
        yield clients[0], clients[1]


def _uses(client: TestClient, key: str) -> tuple[int, int]:
    """(status of a chat turn, status of a KB write) with ``key``."""
    headers = {"X-API-Key": key}
    chat = client.post(
        "/v1/chat",
        json={"tenant": "shop", "session_id": "s", "message": "do you ship abroad?"},
        headers=headers,
    )
    write = client.post(
        "/v1/tenants/shop/faq",
        json={"entries": [{"id": "q1", "question": "Do you ship?", "answer": "Yes, worldwide."}]},
        headers=headers,
    )
    return chat.status_code, write.status_code


def _rotation_reaches_the_other_replica(a: TestClient, b: TestClient, root_key: str) -> None:
    root = {"X-API-Key": root_key}
    keys = a.post("/v1/tenants", json={"id": "shop"}, headers=root).json()
    old_admin, old_widget = keys["admin_key"], keys["widget_key"]
    # replica B has used (and so would cache) both keys before the rotation
    assert _uses(b, old_admin) == (200, 200)
    assert _uses(b, old_widget)[0] == 200
    assert _uses(b, old_widget)[1] == 403  # a widget key never writes

    new = a.post("/v1/tenants/shop/keys", headers={"X-API-Key": old_admin})
    assert new.status_code == 200, new.text
    new_admin, new_widget = new.json()["admin_key"], new.json()["widget_key"]
    rotated = time.monotonic()

    time.sleep(REVOKED_WITHIN_S)
    chat, write = _uses(b, old_admin)
    assert chat in (401, 403) and write in (401, 403), (chat, write)
    chat, write = _uses(b, old_widget)
    assert chat in (401, 403) and write in (401, 403), (chat, write)
    assert time.monotonic() - rotated < REVOKED_WITHIN_S + 5  # the checks above were prompt
    assert _uses(b, new_admin) == (200, 200)
    assert _uses(b, new_widget)[0] == 200
    # and replica A itself, for completeness
    assert _uses(a, old_admin)[1] == 401 and _uses(a, new_admin) == (200, 200)


def test_revoked_keys_fail_on_another_replica_sqlite(
    tmp_path: Path, encoder: Any, settings_factory: Any, root_key: str
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    for a, b in _replicas(tmp_path, encoder, settings_factory, url):
        _rotation_reaches_the_other_replica(a, b, root_key)


def test_revoked_keys_fail_on_another_replica_postgres(
    tmp_path: Path, encoder: Any, settings_factory: Any, root_key: str, postgres_url: str
) -> None:
    for a, b in _replicas(tmp_path, encoder, settings_factory, postgres_url):
        _rotation_reaches_the_other_replica(a, b, root_key)


def test_widget_only_rotation_leaves_the_admin_key_valid(
    tmp_path: Path, encoder: Any, settings_factory: Any, root_key: str
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    for a, b in _replicas(tmp_path, encoder, settings_factory, url):
        keys = a.post("/v1/tenants", json={"id": "shop"}, headers={"X-API-Key": root_key}).json()
        assert _uses(b, keys["widget_key"])[0] == 200
        r = a.post(
            "/v1/tenants/shop/keys?widget_only=true", headers={"X-API-Key": keys["admin_key"]}
        )
        assert r.status_code == 200 and r.json()["admin_key"] is None, r.text
        time.sleep(REVOKED_WITHIN_S)
        assert _uses(b, keys["widget_key"])[0] == 401
        assert _uses(b, r.json()["widget_key"])[0] == 200
        assert _uses(b, keys["admin_key"]) == (200, 200)
