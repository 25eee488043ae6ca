"""The dashboard's panels against the real services, and with every service down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from verticals.dashboard.panels import http_summary

ADMIN = {"X-API-Key": "test-dashboard-key"}


def test_panels_show_the_running_services(
    make_dashboard: Callable[..., Any],
    services: dict[str, Any],
    recommender_service: dict[str, Any],
    new_handoff: Callable[[], tuple[int, str]],
) -> None:
    handoff_id, question = new_handoff()
    app = make_dashboard(**services, support_tenants=["acme", "ghost"])
    with TestClient(app) as client:
        status = client.get("/api/status", headers=ADMIN).json()["services"]
        assert {s["service"]: s["available"] for s in status} == {
            "news": True,
            "support": True,
            "recommender": True,
        }

        news = client.get("/api/news").json()
        assert news["available"] and news["observations"] >= 510
        spike = [a for a in news["alerts"] if a["key"] == "ticker:HLVB"]
        assert spike and spike[0]["rule"] == "negative_share_spike"
        assert any("Halvorsen" in e["title"] for e in spike[0]["evidence"])
        legal = [p["negative_share"] for p in news["points"] if p["topic"] == "regulation_legal"]
        assert legal and max(legal) >= 0.8  # the spike shows in the trend
        buckets = {p["bucket_start"] for p in news["points"]}
        assert [p["bucket_start"] for p in news["overall"]] == sorted(buckets)
        first = news["overall"][0]
        in_first = [p for p in news["points"] if p["bucket_start"] == first["bucket_start"]]
        assert first["total"] == sum(p["total"] for p in in_first)
        hourly = client.get("/api/news", params={"bucket_minutes": 60}).json()
        assert hourly["bucket_minutes"] == 60 and len(hourly["overall"]) < len(news["overall"])
        assert client.get("/api/news", params={"bucket_minutes": 0}).status_code == 422

        support = client.get("/api/support", headers=ADMIN).json()
        assert support["available"]
        acme, ghost = support["tenants"]
        assert acme["tenant"] == "acme" and acme["entries"] == 12 and len(acme["kb"]) == 12
        assert acme["kb"][0]["title"]
        mine = next(h for h in acme["handoffs"] if h["id"] == handoff_id)
        assert mine["question"] == question and mine["status"] == "open"
        assert acme["handoffs"][0]["status"] == "open"  # open ones first
        assert acme["open_handoffs"] >= 1
        assert "ghost" in ghost["error"] and "404" in ghost["error"]

        rec = client.get("/api/recommender", headers=ADMIN).json()
        assert rec["available"] and rec["items"] == 40 and rec["users"] == 4
        assert rec["index"] and rec["model_version"]
        assert rec["trending"]["strategy"] == "cold_start_popular"
        catalog = {item.id for item in recommender_service["catalog"]}
        assert len(rec["trending"]["items"]) == 5
        assert {i["id"] for i in rec["trending"]["items"]} <= catalog
        events = next(r for r in rec["http"] if r["route"] == "/v1/events")
        assert events["requests"] >= 1 and events["server_errors"] == 0


def test_staff_reply_needs_the_key_and_reaches_the_support_bot(
    make_dashboard: Callable[..., Any],
    services: dict[str, Any],
    new_handoff: Callable[[], tuple[int, str]],
) -> None:
    handoff_id, _ = new_handoff()
    with TestClient(make_dashboard(**services)) as client:
        url = f"/api/support/handoffs/{handoff_id}/reply"
        body = {"tenant": "acme", "text": "Canberra."}
        assert client.post(url, json=body).status_code == 401
        assert client.post(url, json=body, headers={"X-API-Key": "nope"}).status_code == 401
        assert client.post(url, json={"tenant": "acme"}, headers=ADMIN).status_code == 422
        r = client.post(url, json=body, headers=ADMIN)
        assert r.status_code == 200 and r.json()["message_id"] > 0
        handoffs = client.get("/api/support", headers=ADMIN).json()["tenants"][0]["handoffs"]
        assert next(h for h in handoffs if h["id"] == handoff_id)["status"] == "closed"
        missing = client.post("/api/support/handoffs/999999/reply", json=body, headers=ADMIN)
        assert missing.status_code == 404 and "support bot refused" in missing.json()["detail"]


def test_services_down_show_as_unavailable(
    make_dashboard: Callable[..., Any], live_server: Any
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    app = make_dashboard(news_url=dead, support_url=dead, recommender_url=dead)
    with TestClient(app) as client:
        status = client.get("/api/status", headers=ADMIN)
        assert status.status_code == 200
        assert not any(s["available"] for s in status.json()["services"])
        for panel, name in (
            ("news", "news monitor"),
            ("support", "support bot"),
            ("recommender", "recommender"),
        ):
            r = client.get(f"/api/{panel}", headers=ADMIN)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["available"] is False and body["url"] == dead
            assert body["error"].startswith(f"{name} unavailable at {dead}")
        reply = client.post(
            "/api/support/handoffs/1/reply", json={"tenant": "acme", "text": "hi"}, headers=ADMIN
        )
        assert reply.status_code == 503 and "support bot unavailable" in reply.json()["detail"]
        # the registry is local: models still work
        assert (
            client.get("/api/models", headers=ADMIN).json()["tasks"][0]["task"]
            == "news-sentiment-topic"
        )
        page = client.get("/")
        assert page.status_code == 200 and '<section id="news">' in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/health").json()["status"] == "ok"


def test_http_summary_reads_prometheus_text() -> None:
    text = "\n".join(
        [
            'http_requests_total{service="r",method="GET",route="/a",status="200"} 8.0',
            'http_requests_total{service="r",method="GET",route="/a",status="404"} 1.0',
            'http_requests_total{service="r",method="GET",route="/a",status="500"} 1.0',
            'http_request_seconds_bucket{service="r",route="/a",le="0.005"} 5.0',
            'http_request_seconds_bucket{service="r",route="/a",le="0.01"} 9.0',
            'http_request_seconds_bucket{service="r",route="/a",le="0.025"} 10.0',
            'http_request_seconds_bucket{service="r",route="/a",le="+Inf"} 10.0',
            'http_request_seconds_count{service="r",route="/a"} 10.0',
            'http_request_seconds_sum{service="r",route="/a"} 0.07',
        ]
    )
    (row,) = http_summary(text + "\n")
    assert row == {
        "route": "/a",
        "requests": 10,
        "client_errors": 1,
        "server_errors": 1,
        "mean_ms": 7.0,
        "p95_ms_at_most": 25.0,
    }


def test_support_tenants_are_discovered_when_none_are_configured(
    make_dashboard: Callable[..., Any], services: dict[str, Any]
) -> None:
    with TestClient(make_dashboard(**services, support_tenants=[])) as client:
        support = client.get("/api/support", headers=ADMIN).json()
    assert support["available"]
    assert [t["tenant"] for t in support["tenants"]] == ["acme"]  # the one tenant there is
