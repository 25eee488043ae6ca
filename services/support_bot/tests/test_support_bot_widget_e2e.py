"""The embeddable widget end to end: Debian's headless chromium (Playwright) against a real
uvicorn server. Needs `services/support_bot/scripts/install_browser.sh`.

With ``VERTICALS_SCREENSHOTS=DIR`` (``make screenshots``) the tests also save the screenshots
shown in the README."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from verticals.serving.testing import chromium

TYPING_WATCH = """
window.__sawTyping = false;
new MutationObserver(() => {
  if (document.querySelector('.vsb-typing')) { window.__sawTyping = true; }
}).observe(document.body, {childList: true, subtree: true});
"""


def screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("VERTICALS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


@pytest.fixture(scope="module")
def server(sample: dict, live_server: Any) -> Iterator[Any]:
    from verticals.support_bot.api import build_app

    with live_server(build_app(sample["settings"], sample["bot"], sample["demo"])) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def embed(page: Any, server: Any, attributes: str) -> None:
    """A page of the server's origin with the widget under ``attributes``."""
    html = f'<!doctype html><body><script src="/widget.js" {attributes}></script></body>'
    page.route(
        server.url + "/embed.html",
        lambda route: route.fulfill(body=html, content_type="text/html"),
    )
    page.goto(server.url + "/embed.html")


def test_widget_opens_greets_streams_rates_and_hands_off(
    sample: dict, server: Any, browser: Any
) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "widget" in m.text else None)
    page.goto(server.url + "/")
    widget = page.locator("[data-vsb=widget]")
    launcher = widget.locator(".vsb-launch")
    panel = widget.locator(".vsb-panel")
    launcher.wait_for(timeout=10_000)
    assert page.locator("script[src='/widget.js']").count() == 1
    # closed at first: a launcher bubble only
    assert panel.is_hidden() and launcher.get_attribute("aria-expanded") == "false"
    launcher.click()
    assert panel.is_visible() and launcher.get_attribute("aria-expanded") == "true"
    assert page.evaluate("document.activeElement.id") == "vsb-input"  # focus in the input
    assert widget.locator("label[for=vsb-input]").count() == 1
    assert widget.locator(".vsb-log").get_attribute("aria-live") == "polite"

    # the greeting suggests real questions of the knowledge base
    suggestions = widget.locator(".vsb-suggest button")
    suggestions.first.wait_for(timeout=10_000)
    faqs = {e.title for e in sample["bot"].store.entries("demo", "faq")}
    assert suggestions.count() == 3
    assert all(q in faqs for q in suggestions.all_inner_texts())

    # a question typed and sent with Enter: typing dots, then the streamed answer
    page.evaluate(TYPING_WATCH)
    page.keyboard.type("How do I return an item?")
    page.keyboard.press("Enter")
    page.wait_for_selector(".vsb-bot[data-state=done]", timeout=20_000)
    bot = widget.locator(".vsb-bot[data-state=done]").first
    assert page.evaluate("window.__sawTyping") is True
    assert widget.locator(".vsb-typing").count() == 0
    assert bot.get_attribute("data-kind") == "answer"
    assert "Return items" in bot.locator(".vsb-text").inner_text()
    link = bot.locator(".vsb-cites a").first
    assert link.get_attribute("data-entry") == "ret-002"
    assert link.get_attribute("href") == "https://shop.larkspur.example/help/start-a-return"
    assert bot.locator("time").get_attribute("datetime")  # timestamps on every message
    assert widget.locator(".vsb-user time").count() >= 1

    # thumbs up lands in /v1/feedback (the session token is sent by the widget)
    before = len(sample["bot"].store.feedback("demo"))
    bot.locator(".vsb-up").click()
    page.wait_for_selector(".vsb-rate[data-rated=up]", timeout=10_000)
    assert bot.locator(".vsb-up").get_attribute("aria-pressed") == "true"
    rows = sample["bot"].store.feedback("demo")
    assert len(rows) == before + 1 and rows[-1].rating == "up"
    assert rows[-1].message_id == int(bot.get_attribute("data-message") or 0)
    screenshot(page, "widget-open")

    # "Talk to a person": a handoff with the transcript; the staff reply is polled in
    widget.locator(".vsb-person").click()
    page.wait_for_selector(".vsb-bot[data-handoff]", timeout=10_000)
    handoff_id = int(widget.locator(".vsb-bot[data-handoff]").get_attribute("data-handoff") or 0)
    handoff = sample["bot"].store.handoff("demo", handoff_id)
    assert handoff is not None and handoff.question == "How do I return an item?"
    r = httpx.post(
        f"{server.url}/v1/handoffs/{handoff_id}/reply",
        json={"tenant": "demo", "text": "Hello, Sam from Larkspur here."},
        headers={"X-API-Key": sample["demo"]["admin_key"]},
    )
    assert r.status_code == 200, r.text
    page.wait_for_selector(".vsb-staff", timeout=15_000)
    assert "Sam from Larkspur" in widget.locator(".vsb-staff").inner_text()

    # Escape minimises, focus goes back to the launcher; a reload keeps the conversation
    page.keyboard.press("Escape")
    assert panel.is_hidden() and page.evaluate("document.activeElement.className") == "vsb-launch"
    page.reload()
    launcher.click()
    page.wait_for_selector(".vsb-staff", timeout=10_000)
    assert "Return items" in widget.locator(".vsb-log").inner_text()
    assert not errors, errors


def test_widget_reads_well_at_360_px(server: Any, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 360, "height": 740})
    page.goto(server.url + "/")
    page.locator(".vsb-launch").click()
    page.locator(".vsb-suggest button").first.wait_for(timeout=10_000)
    box = page.locator(".vsb-panel").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scroll
    snippet = page.locator("#snippet")  # the embed snippet stays inside its column
    assert snippet.evaluate("e => e.scrollWidth <= e.clientWidth")
    page.locator(".vsb-suggest button").first.click()
    page.wait_for_selector(".vsb-bot[data-state=done]", timeout=20_000)
    screenshot(page, "widget-360px")


def test_a_wrong_key_is_reported_at_load_and_the_filter_is_sent(
    server: Any, browser: Any, widget: str
) -> None:
    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    embed(page, server, 'data-tenant="demo" data-key="wk_wrong"')
    page.locator(".vsb-launch").click()
    page.wait_for_selector(".vsb-system", timeout=10_000)  # before anything is typed
    assert any("invalid X-API-Key" in line and "start-up" in line for line in console), console
    assert "not available" in page.locator(".vsb-system").inner_text()
    assert page.locator("#vsb-input").is_disabled()

    page = browser.new_page()
    console.clear()
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    sent: list[dict] = []
    page.on(
        "request",
        lambda req: (
            sent.append(json.loads(req.post_data or "{}"))
            if req.url.endswith("/v1/chat/stream")
            else None
        ),
    )
    embed(
        page,
        server,
        f'data-tenant="demo" data-key="{widget}" data-filter=\'{{"category": "returns"}}\'',
    )
    page.locator(".vsb-launch").click()
    page.locator("#vsb-input").fill("How do I return an item?")
    page.locator(".vsb-send").click()
    page.wait_for_selector(".vsb-bot[data-state=done]", timeout=20_000)
    assert sent and sent[0]["filter"] == {"category": "returns"}
    assert not [line for line in console if "widget" in line], console

    page = browser.new_page()
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    embed(page, server, f'data-tenant="demo" data-key="{widget}" data-filter=\'[1]\'')
    page.locator(".vsb-launch").wait_for()
    assert any("data-filter is ignored" in line for line in console), console
