"""The embeddable widget end to end: Debian's headless chromium (Playwright) against a real
uvicorn server. Needs `services/support_bot/scripts/install_browser.sh`."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def test_widget_streams_answers_citations_and_handoff(sample: dict, live_server: Any) -> None:
    # `make test` installs the browser and sets VERTICALS_REQUIRE_BROWSER: there it must run.
    required = os.environ.get("VERTICALS_REQUIRE_BROWSER") == "1"
    hint = "run services/support_bot/scripts/install_browser.sh"
    if not shutil.which("chromium"):
        (pytest.fail if required else pytest.skip)(f"chromium missing: {hint}")
    try:
        from playwright import sync_api
    except ImportError:
        (pytest.fail if required else pytest.skip)(f"playwright missing: {hint}")
    from verticals.support_bot.api import build_app

    app = build_app(sample["settings"], sample["bot"], sample["demo"])
    with live_server(app) as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.url + "/")
            widget = page.locator("[data-vsb=widget]")
            widget.wait_for(timeout=10_000)
            # the page embeds the widget with one script tag carrying the tenant's public key
            assert page.locator("script[src='/widget.js']").count() == 1

            widget.locator("input").fill("How do I return an item?")
            widget.locator("button").click()
            bot = widget.locator(".vsb-bot").nth(0)
            page.wait_for_selector(".vsb-bot[data-state=done]", timeout=20_000)
            assert bot.get_attribute("data-kind") == "answer"
            assert "Return items" in bot.locator(".vsb-text").inner_text()
            link = bot.locator(".vsb-cites a").first
            assert link.get_attribute("data-entry") == "ret-002"
            assert link.get_attribute("href") == "https://shop.larkspur.example/help/start-a-return"

            widget.locator("input").fill("what is the capital of Australia?")
            widget.locator("button").click()
            page.wait_for_selector(".vsb-bot[data-state=done] >> nth=1", timeout=20_000)
            second = widget.locator(".vsb-bot").nth(1)
            assert second.get_attribute("data-kind") == "handoff"
            assert "team will take over" in second.locator(".vsb-notice").inner_text()
            # staff answer from the handoff queue; the widget polls and shows the reply
            import httpx

            handoff = sample["bot"].store.handoffs("demo", "open")[-1]
            assert "Australia" in handoff.question
            r = httpx.post(
                f"{server.url}/v1/handoffs/{handoff.id}/reply",
                json={"tenant": "demo", "text": "Canberra, but we mostly sell sofas."},
                headers={"X-API-Key": sample["demo"]["admin_key"]},
            )
            assert r.status_code == 200, r.text
            page.wait_for_selector(".vsb-staff", timeout=15_000)
            assert "Canberra" in widget.locator(".vsb-staff").inner_text()
            assert not errors
        finally:
            browser.close()
