"""The dashboard in Debian's headless chromium (Playwright) against real uvicorn servers: the
dashboard and the three services behind it. Needs services/support_bot/scripts/install_browser.sh
(`make test` runs it and sets VERTICALS_REQUIRE_BROWSER=1, so there a missing browser fails)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from verticals.news_monitor.settings import NewsSettings
from verticals.serving.testing import chromium

TASK = NewsSettings.model_fields["model_task"].default


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

        # news: the chart drawn from /trends, the demo's alert, and a live update
        chart = page.locator("#trend-chart")
        chart.wait_for(timeout=10_000)
        points = int(chart.get_attribute("data-points") or 0)
        assert points > 5
        legal = page.locator("#trend-chart path[data-topic='regulation_legal']")
        assert (legal.get_attribute("d") or "").count("L") >= 3
        assert page.locator("#trend-chart path[data-topic='all']").count() == 1
        alert = page.locator("#alerts li[data-key='ticker:HLVB']").first
        assert "negative_share_spike" in alert.inner_text()
        assert "Halvorsen" in alert.inner_text()
        news_service["add"](_later_headlines(news_service["store"], 6))
        page.wait_for_function(
            "n => Number(document.querySelector('#trend-chart').dataset.points) > n",
            arg=points,
            timeout=10_000,
        )

        # support: the handoff queue; a staff reply closes the handoff
        handoff = page.locator(f"[data-tenant='acme'] tr[data-handoff='{handoff_id}']")
        handoff.wait_for(timeout=10_000)
        assert handoff.get_attribute("data-status") == "open"
        assert question in handoff.locator(".question").inner_text()
        entries = page.locator("[data-tenant='acme'] [data-figure='entries']").inner_text()
        assert entries == "12"
        assert page.locator("[data-tenant='acme'] ul.kb li").count() == 12
        handoff.locator("input").fill("Canberra, but we mostly sell sofas.")
        handoff.locator("button").click()
        page.wait_for_selector(
            f"[data-tenant='acme'] tr[data-handoff='{handoff_id}'][data-status='closed']",
            timeout=10_000,
        )

        # recommender: its figures and trending items
        assert page.locator("[data-figure='items']").inner_text() == "40"
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
        page.wait_for_selector(f"[data-tenant='acme'] tr[data-handoff='{handoff_id}']")
        assert page.locator("#models").is_hidden() and page.locator("#recommender").is_hidden()
        assert page.locator("#status .pill").count() == 0
        assert not errors, errors
