"""Who sees what on the dashboard, against a real support bot with two tenants: anonymous and
widget-key callers get nothing tenant-scoped, a tenant admin sees (and answers) only their
tenant with their own key, the dashboard admin sees every tenant."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from verticals.news_monitor.settings import NewsSettings

TASK = NewsSettings.model_fields["model_task"].default

SUPPORT_KEY = "test-support-root-key"
DASHBOARD_KEY = "test-dashboard-key"
TENANTS = ("acme", "globex")


def _sample_faq() -> list[dict[str, Any]]:
    from verticals.support_bot.settings import SupportSettings

    lines = (SupportSettings().sample_dir / "faq.jsonl").read_text().splitlines()[:12]
    return [json.loads(line) for line in lines]


def _make_tenant(url: str, tenant: str) -> dict[str, Any]:
    """A tenant with a few FAQ entries (one renamed after the tenant) and one handed-off
    question, through the bot's HTTP API."""
    root = {"X-API-Key": SUPPORT_KEY}
    made = httpx.post(f"{url}/v1/tenants", json={"id": tenant}, headers=root, timeout=60)
    assert made.status_code == 201, made.text
    keys = made.json()
    admin = {"X-API-Key": keys["admin_key"]}
    faq = _sample_faq()
    title = faq[0]["question"] = f"{faq[0]['question']} ({tenant} edition)"
    added = httpx.post(
        f"{url}/v1/tenants/{tenant}/faq", json={"entries": faq}, headers=admin, timeout=60
    )
    assert added.status_code == 200, added.text
    session = f"{tenant}-secret-session"
    question = f"What is the capital of Australia? (question {len(tenant) * 1000 + ord(tenant[0])})"
    r = httpx.post(
        f"{url}/v1/chat",
        json={"tenant": tenant, "session_id": session, "message": question},
        headers={"X-API-Key": keys["widget_key"]},
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["kind"] == "handoff", r.text
    return {
        "admin": keys["admin_key"],
        "widget": keys["widget_key"],
        "handoff": r.json()["handoff_id"],
        "question": question,
        "session": session,
        "title": title,
    }


@pytest.fixture(scope="module")
def support_bot(
    tmp_path_factory: pytest.TempPathFactory, encoder: Any, live_server: Any
) -> Iterator[dict[str, Any]]:
    from verticals.support_bot.api import build_app
    from verticals.support_bot.pipeline import SupportBot
    from verticals.support_bot.settings import SupportSettings

    settings = SupportSettings(
        data_dir=tmp_path_factory.mktemp("support-auth"),
        admin_api_key=SUPPORT_KEY,  # type: ignore[arg-type]
    )
    with live_server(build_app(settings, SupportBot(settings, encoder=encoder))) as server:
        yield {"url": server.url, **{t: _make_tenant(server.url, t) for t in TENANTS}}


@pytest.fixture
def dashboard(
    make_dashboard: Callable[..., Any], support_bot: dict[str, Any]
) -> Iterator[TestClient]:
    import socket

    with socket.socket() as s:  # news and recommender: a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    app = make_dashboard(
        support_url=support_bot["url"],
        news_url=dead,
        recommender_url=dead,
        support_tenants=list(TENANTS),
    )
    with TestClient(app) as client:
        yield client


def _secrets(support_bot: dict[str, Any], tenant: str) -> list[str]:
    """What must never reach someone who may not see ``tenant``."""
    t = support_bot[tenant]
    return [t["question"], t["session"], t["title"], t["admin"], t["widget"], SUPPORT_KEY]


PROTECTED_GETS = ("/api/support", "/api/status", "/api/models", "/api/recommender")


def _protected_posts(support_bot: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    handoff = support_bot["acme"]["handoff"]
    return [
        (f"/api/models/{TASK}/promote", {"version": 2}),
        (f"/api/models/{TASK}/rollback", {}),
        (f"/api/support/handoffs/{handoff}/reply", {"tenant": "acme", "text": "hi"}),
    ]


def test_anonymous_and_widget_callers_get_nothing_tenant_scoped(
    dashboard: TestClient, support_bot: dict[str, Any], registry: Any
) -> None:
    seen: list[str] = []
    widget = {"X-API-Key": support_bot["acme"]["widget"]}
    tenant_admin_header = {"X-API-Key": support_bot["acme"]["admin"]}
    for headers in ({}, widget, tenant_admin_header):
        for path in PROTECTED_GETS:
            r = dashboard.get(path, headers=headers)
            assert r.status_code == 401, (path, headers, r.text)
            seen.append(r.text)
        for path, body in _protected_posts(support_bot):
            r = dashboard.post(path, json=body, headers=headers)
            assert r.status_code == 401, (path, headers, r.text)
            seen.append(r.text)
    assert registry.current_version(TASK) == 1  # nothing was promoted

    # a widget key cannot log in; a wrong key neither; no cookie either way
    for key, code in ((support_bot["acme"]["widget"], 403), ("wrong-key", 401)):
        r = dashboard.post("/api/login", json={"key": key})
        assert r.status_code == code, r.text
        assert "set-cookie" not in r.headers
        seen.append(r.text)
    assert dashboard.get("/api/support").status_code == 401

    # what stays public: the page, who am I, the refresh interval, the news figures
    assert dashboard.get("/").status_code == 200
    assert dashboard.get("/api/session").json() == {"role": None, "tenant": None}
    config = dashboard.get("/api/config").json()
    assert config == {"refresh_seconds": 5.0}  # the service URLs only for the dashboard admin
    news = dashboard.get("/api/news")
    assert news.status_code == 200
    seen += [news.text, dashboard.get("/api/session").text]
    for tenant in TENANTS:
        for secret in _secrets(support_bot, tenant):
            assert not any(secret in text for text in seen), secret
    assert not any(tenant in text for text in seen for tenant in TENANTS)


def test_tenant_admin_sees_and_answers_only_their_tenant(
    dashboard: TestClient, support_bot: dict[str, Any]
) -> None:
    acme, globex = support_bot["acme"], support_bot["globex"]
    r = dashboard.post("/api/login", json={"key": acme["admin"]})
    assert r.status_code == 200 and r.json() == {"role": "tenant", "tenant": "acme"}
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Max-Age=28800" in cookie and "Secure" not in cookie  # Secure outside local use
    assert acme["admin"] not in cookie  # a random token, not the key
    assert dashboard.get("/api/session").json() == {"role": "tenant", "tenant": "acme"}

    support = dashboard.get("/api/support")
    assert support.status_code == 200, support.text
    (row,) = support.json()["tenants"]  # globex is configured too, but not theirs
    assert row["tenant"] == "acme"
    assert [h["question"] for h in row["handoffs"]] == [acme["question"]]
    assert acme["title"] in [e["title"] for e in row["kb"]]
    for secret in _secrets(support_bot, "globex"):
        assert secret not in support.text

    for path in PROTECTED_GETS[1:]:
        assert dashboard.get(path).status_code == 403, path
    promote = dashboard.post(f"/api/models/{TASK}/promote", json={"version": 2})
    assert promote.status_code == 403
    assert "services" not in dashboard.get("/api/config").json()

    other = dashboard.post(
        f"/api/support/handoffs/{globex['handoff']}/reply",
        json={"tenant": "globex", "text": "hello from acme"},
    )
    assert other.status_code == 403
    # globex's handoff id under acme's name: the support bot (with acme's key) finds nothing
    sneaky = dashboard.post(
        f"/api/support/handoffs/{globex['handoff']}/reply",
        json={"tenant": "acme", "text": "hello from acme"},
    )
    assert sneaky.status_code == 404, sneaky.text
    mine = dashboard.post(
        f"/api/support/handoffs/{acme['handoff']}/reply",
        json={"tenant": "acme", "text": "Canberra.", "close": False},
    )
    assert mine.status_code == 200, mine.text

    token = dashboard.cookies.get("verticals_dashboard_session")
    assert dashboard.post("/api/logout").json() == {"role": None, "tenant": None}
    assert dashboard.get("/api/support").status_code == 401
    # the old token is dead on the server, not only forgotten by the browser
    dashboard.cookies.set("verticals_dashboard_session", token or "")
    assert dashboard.get("/api/support").status_code == 401


def test_dashboard_admin_sees_every_tenant(
    dashboard: TestClient, support_bot: dict[str, Any]
) -> None:
    r = dashboard.post("/api/login", json={"key": DASHBOARD_KEY})
    assert r.status_code == 200 and r.json() == {"role": "admin", "tenant": None}
    support = dashboard.get("/api/support").json()
    assert [t["tenant"] for t in support["tenants"]] == list(TENANTS)
    for row in support["tenants"]:
        questions = [h["question"] for h in row["handoffs"]]
        assert support_bot[row["tenant"]]["question"] in questions
    assert dashboard.get("/api/models").status_code == 200
    assert dashboard.get("/api/status").status_code == 200
    assert "services" in dashboard.get("/api/config").json()
    dashboard.post("/api/logout")
    # an API client may send the dashboard admin key instead of logging in
    header = {"X-API-Key": DASHBOARD_KEY}
    assert dashboard.get("/api/support", headers=header).status_code == 200


def test_a_rotated_tenant_key_ends_the_dashboard_login(
    dashboard: TestClient, support_bot: dict[str, Any]
) -> None:
    initech = _make_tenant(support_bot["url"], "initech")
    assert dashboard.post("/api/login", json={"key": initech["admin"]}).status_code == 200
    assert dashboard.get("/api/support").status_code == 200
    rotated = httpx.post(
        f"{support_bot['url']}/v1/tenants/initech/keys",
        headers={"X-API-Key": initech["admin"]},
        timeout=60,
    )
    assert rotated.status_code == 200
    time.sleep(1.0)  # the support bot's key cache (KEY_CACHE_S)
    assert dashboard.get("/api/support").status_code == 401
    assert dashboard.get("/api/session").json()["role"] is None  # the login ended
    again = dashboard.post("/api/login", json={"key": rotated.json()["admin_key"]})
    assert again.status_code == 200 and again.json()["tenant"] == "initech"


def test_sessions_expire() -> None:
    from verticals.dashboard.auth import Sessions, Viewer

    sessions = Sessions(ttl_s=0.2)
    token = sessions.start(Viewer("admin", "k"))
    assert sessions.get(token) is not None and sessions.get(token + "x") is None
    time.sleep(0.3)
    assert sessions.get(token) is None


def test_the_cookie_is_secure_outside_local_use(make_dashboard: Callable[..., Any]) -> None:
    import secrets

    key = secrets.token_urlsafe(32)
    app = make_dashboard(
        environment="production", admin_api_key=key, support_admin_key=secrets.token_urlsafe(32)
    )
    with TestClient(app, base_url="https://testserver") as client:
        r = client.post("/api/login", json={"key": key})
        assert r.status_code == 200, r.text
        assert "Secure" in r.headers["set-cookie"]
        assert client.get("/api/session").json()["role"] == "admin"


def test_bad_input_is_a_4xx_never_a_500(
    make_dashboard: Callable[..., Any], support_bot: dict[str, Any], registry: Any
) -> None:
    app = make_dashboard(support_url=support_bot["url"])
    with TestClient(app, raise_server_exceptions=False) as client:
        # a key that cannot travel in an HTTP header is refused, not forwarded
        for key in ("ключ", "a\nb", "tab\tkey", "key ", " key"):
            assert client.post("/api/login", json={"key": key}).status_code == 422, key
        admin = {"X-API-Key": DASHBOARD_KEY}
        promote = f"/api/models/{TASK}/promote"
        for body in ({"version": "2"}, {"version": True}, {"version": 2, "force": 0}):
            assert client.post(promote, json=body, headers=admin).status_code == 422, body
        assert client.post(promote, json={"version": 2.0}, headers=admin).status_code == 200
        assert registry.current_version(TASK) == 2
        reply = {"tenant": "acme", "text": "hi"}
        for handoff in (0, 2**63):
            r = client.post(f"/api/support/handoffs/{handoff}/reply", json=reply, headers=admin)
            assert r.status_code == 422, r.text


def test_knowledge_base_tools_are_scoped_to_the_login(
    dashboard: TestClient, support_bot: dict[str, Any]
) -> None:
    acme = support_bot["acme"]
    kb = "/api/support/{}/entries"
    for tenant in TENANTS:  # anonymous: nothing
        assert dashboard.get(kb.format(tenant)).status_code == 401
        test = dashboard.post(f"/api/support/{tenant}/search", json={"question": "returns"})
        assert test.status_code == 401

    assert dashboard.post("/api/login", json={"key": acme["admin"]}).status_code == 200
    found = dashboard.get(kb.format("acme"), params={"q": "acme edition"})
    assert found.status_code == 200, found.text
    assert [e["title"] for e in found.json()["entries"]] == [acme["title"]]
    assert found.json()["scanned"] == 12
    entry = {"id": "acme-hours", "question": "When are you open?", "answer": "9 to 5."}
    assert dashboard.post("/api/support/acme/faq", json=entry).json()["count"] == 1
    test = dashboard.post("/api/support/acme/search", json={"question": "when are you open"})
    assert test.status_code == 200, test.text
    assert test.json()["candidates"][0]["entry_id"] == "acme-hours"
    assert test.json()["decision"] in ("answer", "clarify", "handoff")
    upload = dashboard.post(
        "/api/support/acme/upload",
        params={"kind": "markdown", "name": "care guide.md"},
        content=b"# Care\n\n## Wood\n\nOil the table twice a year.\n",
    )
    assert upload.status_code == 200 and upload.json()["id"] == "care-guide", upload.text
    assert dashboard.delete("/api/support/acme/entries/care-guide").json()["count"] >= 1
    assert dashboard.delete("/api/support/acme/entries/acme-hours").json()["count"] == 1
    missing = dashboard.delete("/api/support/acme/entries/acme-hours")
    assert missing.status_code == 404 and "acme-hours" in missing.json()["detail"]

    # another tenant: refused before the support bot is asked
    assert dashboard.get(kb.format("globex")).status_code == 403
    assert dashboard.post("/api/support/globex/faq", json=entry).status_code == 403
    assert dashboard.delete("/api/support/globex/entries/x").status_code == 403
    secret = support_bot["globex"]["title"]
    assert secret not in dashboard.get(kb.format("acme"), params={"q": "edition"}).text


def test_knowledge_base_bad_input_is_a_4xx(
    dashboard: TestClient, support_bot: dict[str, Any]
) -> None:
    assert dashboard.post("/api/login", json={"key": DASHBOARD_KEY}).status_code == 200
    bad_csv = dashboard.post(
        "/api/support/acme/upload", params={"kind": "csv"}, content=b"id,question\nx,y\n"
    )
    assert bad_csv.status_code == 400 and "answer" in bad_csv.json()["detail"], bad_csv.text
    for params, content in (
        ({"kind": "pdf"}, b"%PDF"),
        ({"kind": "csv"}, b"  \n"),
        ({"kind": "text"}, b"\xff\xfe not utf-8"),
    ):
        r = dashboard.post("/api/support/acme/upload", params=params, content=content)
        assert r.status_code in (400, 422), (params, r.text)
    for body in ({"question": ""}, {"question": "x", "k": 0}, {"question": "x", "extra": 1}):
        assert dashboard.post("/api/support/acme/search", json=body).status_code == 422, body
    no_answer = {"id": "x", "question": "q", "answer": ""}
    assert dashboard.post("/api/support/acme/faq", json=no_answer).status_code == 422
    assert dashboard.get("/api/support/nope/entries").status_code == 404
    assert dashboard.get("/api/support/Bad Tenant/entries").status_code == 422
    for hours in (0, 7, 25):  # the chart's ranges are 1, 6 and 24 hours
        assert dashboard.get("/api/news", params={"hours": hours}).status_code == 422
