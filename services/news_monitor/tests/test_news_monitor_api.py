"""The ops API with the monitor running inside it, fed the demo file on the real broker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from verticals.news_monitor.api import build_app
from verticals.news_monitor.broker import NoidaBroker
from verticals.news_monitor.feed import produce, read_lines, refresh
from verticals.news_monitor.settings import shared_dir
from verticals.news_monitor.testing import make_settings, wait_for


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP endpoint on 127.0.0.1 that records what it receives."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(
                {**json.loads(body), "idempotency_key": self.headers["Idempotency-Key"]}
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def test_demo_alert_is_visible_in_the_api(
    broker: NoidaBroker,
    model: Any,
    tmp_path: Path,
    request: Any,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = webhook
    settings = make_settings(
        broker.bootstrap, request.node.nodeid, tmp_path, max_batch=64, webhook_urls=[url]
    )
    app = build_app(settings, model)
    with TestClient(app) as client:
        produce(settings, refresh(read_lines(shared_dir() / "demo_headlines.jsonl")))
        body = wait_for(
            lambda: client.get("/alerts", params={"key": "ticker:HLVB"}).json()["alerts"],
            90,
            0.5,
            info=lambda: client.get("/health").json(),
        )
        alert = body[0]
        assert alert["rule"] == "negative_share_spike" and alert["negative_share"] >= 0.5
        assert alert["negative_share"] > alert["baseline"]
        assert any("Halvorsen" in e["title"] for e in alert["evidence"])
        wait_for(lambda: client.get("/health").json()["observations"] >= 510, 60, 0.5)

        everything = client.get("/alerts").json()
        assert everything["count"] >= 1
        assert client.get("/alerts", params={"rule": "nope"}).json()["count"] == 0
        assert client.get("/alerts", params={"limit": 0}).status_code == 422

        trends = client.get("/trends", params={"topic": "regulation_legal"}).json()
        shares = [p["negative_share"] for p in trends["points"]]
        # the spike shows in the trend (regulation news is mostly negative anyway: the default
        # model trained on real headlines puts its 5-minute buckets at 0.75, the old one at 0.8+)
        assert trends["points"] and max(shares) >= 0.7
        png = client.get("/trends", params={"format": "png"})
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"

        posted = wait_for(lambda: [a for a in received if a["idempotency_key"] == alert["id"]], 20)
        assert posted[0]["rule"] == "negative_share_spike" and posted[0]["evidence"]
        delivered = client.get("/alerts", params={"key": "ticker:HLVB"}).json()["alerts"][0]
        assert delivered["webhook_delivered"] and delivered["webhook_attempts"] == 1

        health = client.get("/health").json()
        assert health["status"] == "ok" and health["consumer"]["running"]
        assert health["model"].startswith("news-sentiment-topic:v")
        metrics = client.get("/metrics").text
        for name in (
            "news_messages_in_total 513.0",
            "news_messages_out_total 510.0",
            'news_dead_lettered_total{error="invalid_json"} 1.0',
            "news_batch_seconds_count",
            "news_publish_to_classified_seconds_count",
            'news_alerts_total{rule="negative_share_spike"}',
            'news_consumer_lag{partition="0"}',
        ):
            assert name in metrics, name
