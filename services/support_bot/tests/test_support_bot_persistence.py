"""Indexes and data survive a restart; stale or missing indexes are rebuilt."""

from __future__ import annotations

import shutil
from typing import Any

from fastapi.testclient import TestClient


def test_restart_keeps_entries_indexes_and_transcripts(
    tmp_path: Any, encoder: Any, settings_factory: Any
) -> None:
    from verticals.support_bot.api import build_app
    from verticals.support_bot.pipeline import SupportBot

    settings = settings_factory(tmp_path)
    bot = SupportBot(settings, encoder=encoder)
    admin, widget = bot.create_tenant("shop")
    faq = (
        "id,question,answer,category,tags,url\n"
        'p1,Do you ship to Iceland?,"Yes, in 5 to 8 days.",shipping,iceland|abroad,https://x.example/p1\n'
        'p2,Can I pay with a voucher?,"Yes, enter it at checkout.",payments,,\n'
        'p3,Do you sell lamps?,"Yes, floor and desk lamps.",products,,\n'
    )
    assert bot.ingest_faq("shop", faq, "csv") == 3
    bot.delete("shop", "p3")
    first = bot.chat("shop", "sess", "shipping to Iceland?")
    assert first.citations[0]["id"] == "p1"
    bot.store.db.dispose()

    # a new process: the app builds its own bot at start and loads the saved indexes
    with TestClient(build_app(settings)) as client:
        restarted: SupportBot = client.app.state.bot  # type: ignore[attr-defined]
        assert len(restarted.index("shop")) == 2
        r = client.post(
            "/v1/chat",
            json={"tenant": "shop", "session_id": "sess", "message": "and how long does it take?"},
            headers={"X-API-Key": widget},
        )
        assert r.status_code == 200, r.text
        assert r.json()["citations"][0]["id"] == "p1"  # session memory survived too
        listed = client.get("/v1/tenants/shop/entries", headers={"X-API-Key": admin}).json()
        assert sorted(e["id"] for e in listed) == ["p1", "p2"]
        assert listed[0]["tags"] == ["iceland", "abroad"]

    fresh = SupportBot(settings, encoder=encoder)
    assert fresh.load() == {"shop": "loaded"}
    # a missing index is rebuilt from the database
    shutil.rmtree(settings.index_dir() / "shop")
    fresh = SupportBot(settings, encoder=encoder)
    assert fresh.load() == {"shop": "rebuilt"}
    assert fresh.chat("shop", "x", "can I pay with a voucher").citations[0]["id"] == "p2"
    # an index written by another encoder is rebuilt too
    manifest = settings.index_dir() / "shop" / "manifest.json"
    manifest.write_text(manifest.read_text().replace(encoder.version, "other:v9"))
    assert SupportBot(settings, encoder=encoder).load() == {"shop": "rebuilt"}
