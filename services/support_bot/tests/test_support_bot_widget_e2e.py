"""The embeddable widget end to end: Debian's headless chromium (Playwright) against a real
uvicorn server. Needs `services/support_bot/scripts/install_browser.sh`."""

from __future__ import annotations

from typing import Any

from verticals.serving.testing import chromium


def test_widget_streams_answers_citations_and_handoff(sample: dict, live_server: Any) -> None:
    from verticals.support_bot.api import build_app

    app = build_app(sample["settings"], sample["bot"], sample["demo"])
    with live_server(app) as server, chromium() as browser:
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
