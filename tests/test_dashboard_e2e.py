"""The dashboard in Debian's headless chromium (Playwright) against real uvicorn servers: the
dashboard and the three services behind it. Needs services/support_bot/scripts/install_browser.sh
(`make test` runs it and sets VERTICALS_REQUIRE_BROWSER=1, so there a missing browser fails)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from verticals.news_monitor.settings import NewsSettings
from verticals.serving.testing import chromium

TASK = NewsSettings.model_fields["model_task"].default


def screenshot(page: Any, name: str, selector: str) -> None:
    """With ``VERTICALS_SCREENSHOTS=DIR`` (``make screenshots``): the README's pictures."""
    folder = os.environ.get("VERTICALS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.locator(selector).screenshot(path=str(Path(folder) / f"{name}.png"))


def _later_headlines(store: Any, n: int) -> list[bytes]:
    """Headlines one hour after the newest stored one: a new bucket for the live chart."""
    latest = max(p["bucket_start"] for p in store.trends(900))
    start = datetime.fromisoformat(latest) + timedelta(hours=1)
    titles = [
        "Halvorsen Bank faces new lawsuit over disclosure failures",
        "Atlas Freight beats estimates as quarterly profit jumps",
    ]
    return [
        json.dumps(
            {
                "id": f"live-{i}",
                "published_at": (start + timedelta(seconds=20 * i)).astimezone(UTC).isoformat(),
                "source": "e2e",
                "title": titles[i % 2],
            }
        ).encode()
        for i in range(n)
    ]


def test_dashboard_in_chromium(
    make_dashboard: Callable[..., Any],
    services: dict[str, Any],
    news_service: dict[str, Any],
    support_service: dict[str, Any],
    new_handoff: Callable[[], tuple[int, str]],
    live_server: Any,
    registry: Any,
    dashboard_key: str,
) -> None:
    handoff_id, question = new_handoff()
    httpx.get(services["recommender_url"] + "/no-such-path", timeout=30)  # counted as "unmatched"
    app = make_dashboard(**services, refresh_seconds=1)
    with live_server(app) as server, chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # the refused promotion's 409 and the wrong key's 401 are the failed requests it logs
        page.on(
            "console",
            lambda m: (
                errors.append(m.text)
                if m.type == "error" and not any(f"status of {c}" in m.text for c in (401, 409))
                else None
            ),
        )
        page.on("dialog", lambda dialog: errors.append(f"unexpected dialog: {dialog.message}"))
        page.goto(server.url + "/")

        # anonymous: the login form and the public news only, nothing of any tenant
        page.wait_for_selector("#trend-chart", timeout=15_000)
        assert page.locator("#login-form").is_visible()
        for section in ("models", "support", "recommender"):
            assert page.locator(f"#{section}").is_hidden(), section
        assert "acme" not in page.content() and question not in page.content()

        # a wrong key is refused with a message; the dashboard key logs in
        page.fill("#login-key", "not-the-key")
        page.click("#login-form button[type='submit']")
        page.wait_for_selector("#login-message.error", timeout=10_000)
        assert "invalid key" in page.locator("#login-message").inner_text()
        page.fill("#login-key", dashboard_key)
        page.click("#login-form button[type='submit']")
        page.wait_for_selector("#whoami:has-text('dashboard admin')", timeout=10_000)
        assert page.locator("#login-form").is_hidden()
        assert page.evaluate("document.cookie") == ""  # HttpOnly: the page cannot read it
        (cookie,) = page.context.cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert dashboard_key not in json.dumps(page.context.cookies())

        # models: the table, promote v2, roll back, a refused promotion shows its reason
        row = "tr[data-task='{}'][data-version='{}']"
        v1, v2, v3 = (row.format(TASK, v) for v in (1, 2, 3))
        page.wait_for_selector(f"{v1}[data-current='true']", timeout=15_000)
        macro = f"{registry.card(TASK, 1)['metrics']['macro_f1']:.4f}".rstrip("0")
        assert macro in page.locator(f"{v1} td[data-metric='macro_f1']").inner_text()
        page.click(f"{v2} button[data-action='promote']")
        page.wait_for_selector(f"{v2}[data-current='true']", timeout=10_000)
        assert "v2 is current" in page.locator("#models-message").inner_text()
        assert registry.current_version(TASK) == 2
        page.click(f"tr.task[data-task='{TASK}'] button[data-action='rollback']")
        page.wait_for_selector(f"{v1}[data-current='true']", timeout=10_000)
        assert registry.current_version(TASK) == 1
        page.click(f"{v3} button[data-action='promote']")
        page.wait_for_selector("#models-message.error", timeout=10_000)
        assert "refused" in page.locator("#models-message").inner_text()
        assert page.locator(f"{v3}[data-current='false']").count() == 1
        # each version links to its card, confusion matrices and training curve
        href = page.locator(f"{v1} a[data-file='card']").get_attribute("href")
        card = page.request.get(f"{server.url}{href}")
        assert card.ok and card.json()["task"] == TASK
        for name in ("confusion_topic.png", "training_curve.png"):
            link = page.locator(f"{v3} a[data-file='{name}']")
            figure = page.request.get(f"{server.url}{link.get_attribute('href')}")
            assert figure.ok and figure.headers["content-type"] == "image/png", name
            assert figure.body()[:4] == b"\x89PNG"
        assert "training curve" in page.locator(f"{v3} td.files").inner_text()
        screenshot(page, "dashboard-models", "#models")

        # news: the top five topics and "all", the rest behind a toggle; 1/6/24 h ranges;
        # hover values; alert markers; a live update
        chart = page.locator("#trend-chart")
        chart.wait_for(timeout=10_000)
        for hours, minutes in ((24, 60), (1, 5), (6, 15)):  # each range with its bucket width
            page.click(f"button[data-range='{hours}']")
            page.wait_for_selector(f"#news h3:has-text('per {minutes} min, latest {hours} h')")
        assert page.locator("button[data-range='6']").get_attribute("aria-pressed") == "true"
        assert chart.get_attribute("data-topics") == "5"
        assert page.locator("#trend-chart path[data-topic]").count() == 6  # 5 topics + all
        assert page.locator("#trend-chart path[data-topic='all']").count() == 1
        page.click("#all-topics")
        page.wait_for_function(
            "() => Number(document.querySelector('#trend-chart').dataset.topics) > 5",
            timeout=10_000,
        )
        page.click("#all-topics")
        page.wait_for_function(
            "() => document.querySelector('#trend-chart').dataset.topics === '5'",
            timeout=10_000,
        )
        points = int(chart.get_attribute("data-points") or 0)
        assert points > 5
        assert page.locator("#trend-chart [data-alert-marker='ticker:HLVB']").count() >= 1
        chart.hover(position={"x": 480, "y": 150})
        tooltip = page.locator("#news .tooltip")
        tooltip.wait_for(state="visible", timeout=5_000)
        assert tooltip.locator("tr[data-topic='all']").count() == 1
        assert "/" in tooltip.locator("tr[data-topic='all'] td").nth(2).inner_text()
        screenshot(page, "dashboard-news", "#news")
        page.mouse.move(0, 0)
        tooltip.wait_for(state="hidden", timeout=5_000)
        chart.focus()  # the keyboard reads the same values
        page.keyboard.press("ArrowLeft")
        tooltip.wait_for(state="visible", timeout=5_000)
        page.keyboard.press("Escape")
        alert = page.locator("#alerts li[data-key='ticker:HLVB']").first
        assert "negative_share_spike" in alert.inner_text()
        assert "Halvorsen" in alert.inner_text()
        news_service["add"](_later_headlines(news_service["store"], 6))
        page.wait_for_function(
            "n => Number(document.querySelector('#trend-chart').dataset.points) > n",
            arg=points,
            timeout=10_000,
        )

        # support: the handoff queue with each conversation; a staff reply closes the handoff
        handoff = page.locator(f"[data-tenant='acme'] details[data-handoff='{handoff_id}']")
        handoff.wait_for(timeout=10_000)
        assert handoff.get_attribute("data-status") == "open"
        assert question in handoff.locator(".question").inner_text()
        handoff.locator("summary").click()
        said = handoff.locator(".transcript li")
        assert said.count() == 2  # the customer's question and the bot's handoff notice
        assert question in said.nth(0).inner_text()
        assert said.nth(1).get_attribute("data-role") == "bot"
        entries = page.locator("[data-tenant='acme'] [data-figure='entries']").inner_text()
        assert entries == "12"
        handoff.locator("textarea").fill("Canberra, but we mostly sell sofas.")
        handoff.locator("button[type='submit']").click()
        page.wait_for_selector(
            f"[data-tenant='acme'] details[data-handoff='{handoff_id}'][data-status='closed']",
            timeout=10_000,
        )

        # the knowledge base: search, edit, new entry, upload, delete, test a question
        kb = page.locator("[data-kb='acme']")
        kb.locator("table.kb tr[data-entry]").first.wait_for(timeout=10_000)
        assert kb.locator("table.kb tr[data-entry]").count() == 12
        faq = support_service["faq"]
        kb.locator("input[type='search']").fill(faq[1]["question"].split()[-1].strip("?"))
        kb.locator("form.kb-search button[type='submit']").click()
        row = kb.locator(f"tr[data-entry='{faq[1]['id']}']")
        row.wait_for(timeout=10_000)
        row.locator("button[data-action='edit']").click()
        kb.locator("form.kb-edit textarea[name='answer']").fill("Edited in the dashboard.")
        kb.locator("form.kb-edit button[type='submit']").click()
        kb.locator(".message:has-text('Saved')").wait_for(timeout=10_000)
        url = support_service["url"] + f"/v1/tenants/acme/entries/{faq[1]['id']}"
        admin = {"X-API-Key": support_service["admin_key"]}
        assert (
            httpx.get(url, headers=admin, timeout=30).json()["body"] == "Edited in the dashboard."
        )
        kb.locator("input[name='file']").set_input_files(
            files=[
                {
                    "name": "gift-cards.csv",
                    "mimeType": "text/csv",
                    "buffer": b"id,question,answer\ngift-1,Do you sell gift cards?,"
                    b"Yes: digital gift cards from 10 to 500 euros.\n",
                }
            ]
        )
        kb.locator("form.kb-upload button[type='submit']").click()
        kb.locator(".message:has-text('Uploaded gift-cards.csv: 1 entry indexed')").wait_for(
            timeout=10_000
        )
        kb.locator("form.kb-test input").fill("can I buy a gift card?")
        kb.locator("form.kb-test button").click()
        decision = kb.locator("[data-decision]")
        decision.wait_for(timeout=10_000)
        assert decision.get_attribute("data-decision") == "answer"
        assert (
            kb.locator("table.candidates tr[data-candidate]").first.get_attribute("data-candidate")
            == "gift-1"
        )
        assert kb.locator("table.candidates tr[data-candidate]").count() == 5
        if os.environ.get("VERTICALS_SCREENSHOTS"):  # an open handoff, its conversation shown
            waiting, _ = new_handoff()
            page.evaluate("document.activeElement.blur()")  # a focused form pauses refreshes
            shown = page.locator(f"[data-tenant='acme'] details[data-handoff='{waiting}']")
            shown.wait_for(timeout=10_000)
            shown.locator("summary").click()
            screenshot(page, "dashboard-support", "#support")
        kb.locator("input[type='search']").fill("gift cards")
        kb.locator("form.kb-search button[type='submit']").click()
        kb.locator("tr[data-entry='gift-1'] button[data-action='delete']").click()
        kb.locator(".message:has-text('Deleted gift-1')").wait_for(timeout=10_000)
        gone = httpx.get(
            f"{support_service['url']}/v1/tenants/acme/entries/gift-1", headers=admin, timeout=30
        )
        assert gone.status_code == 404

        # recommender: its figures and trending items; requests to unknown paths are a note,
        # not an "unmatched" route
        assert page.locator("[data-figure='items']").inner_text() == "40"
        assert page.locator("table.http tr[data-route='unmatched']").count() == 0
        assert page.locator("table.trending tr[data-item]").count() == 5
        assert page.locator("#status .pill.up").count() == 3

        # log out: back to the public page, nothing of the tenant left in it
        page.click("#logout")
        page.wait_for_selector("#login-form", state="visible", timeout=10_000)
        assert page.locator("#support").is_hidden()
        assert question not in page.content()

        # a tenant admin: that tenant's support panel only
        page.fill("#login-key", support_service["admin_key"])
        page.click("#login-form button[type='submit']")
        page.wait_for_selector("#whoami:has-text('admin of tenant acme')", timeout=10_000)
        page.wait_for_selector(f"[data-tenant='acme'] details[data-handoff='{handoff_id}']")
        assert page.locator("#models").is_hidden() and page.locator("#recommender").is_hidden()
        assert page.locator("#status .pill").count() == 0
        assert not errors, errors
