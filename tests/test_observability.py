"""One log format across the suite: every service's app logs JSON lines with the same keys, the
request id of the request that caused them (X-Request-ID, echoed), and answers /metrics with
Prometheus text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

BASE_KEYS = {"ts", "level", "service", "logger", "msg", "request_id"}
ADMIN = "test-observability-key"

# service -> (build the app over a temp folder, the request to make: method, path, json body)
Builder = Callable[[Path, Any], Any]


def _news(folder: Path, _: Any) -> Any:
    from verticals.news_monitor.api import build_app
    from verticals.news_monitor.settings import NewsSettings

    return build_app(NewsSettings(data_dir=folder), consume=False)


def _support(folder: Path, encoder: Any) -> Any:
    from verticals.support_bot.api import build_app
    from verticals.support_bot.pipeline import SupportBot
    from verticals.support_bot.settings import SupportSettings

    settings = SupportSettings(data_dir=folder, admin_api_key=ADMIN)  # type: ignore[arg-type]
    return build_app(settings, SupportBot(settings, encoder=encoder))


def _recommender(folder: Path, encoder: Any) -> Any:
    from verticals.recommender.api import build_app
    from verticals.recommender.pipeline import Recommender
    from verticals.recommender.settings import RecommenderSettings

    settings = RecommenderSettings(data_dir=folder, admin_api_key=ADMIN)  # type: ignore[arg-type]
    return build_app(settings, Recommender(settings, encoder=encoder))


def _dashboard(folder: Path, _: Any) -> Any:
    from verticals.core.registry import ModelRegistry
    from verticals.dashboard.api import build_app
    from verticals.dashboard.settings import DashboardSettings

    settings = DashboardSettings(admin_api_key=ADMIN)  # type: ignore[arg-type]
    return build_app(settings, ModelRegistry(folder / "registry"))


SERVICES: dict[str, tuple[Builder, str, str, Any]] = {
    "news_monitor": (_news, "GET", "/alerts", None),
    "support_bot": (_support, "POST", "/v1/tenants", {"id": "observed"}),
    "recommender": (_recommender, "POST", "/v1/items", {"items": [{"id": "i1", "title": "Tea"}]}),
    "dashboard": (_dashboard, "GET", "/api/models", None),
}


@pytest.fixture(scope="module")
def encoder() -> Any:
    from verticals.core.inference import Encoder

    return Encoder.from_base()


@contextmanager
def restored_logging() -> Iterator[None]:
    """Put the root logger back as it was (each app's set-up replaces its handler)."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def capture_logs() -> io.StringIO:
    """Point the handler the apps configured at a buffer."""
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[arg-type]
    return stream


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory, encoder: Any) -> Iterator[dict[str, Any]]:
    """Per service: the log lines its app wrote while answering one request, and its answers."""
    results: dict[str, Any] = {}
    with restored_logging():
        for name, (build, method, path, body) in SERVICES.items():
            app = build(tmp_path_factory.mktemp(name), encoder)  # configures the JSON logging
            stream = capture_logs()
            rid = f"obs-{name}"
            headers = {"X-Request-ID": rid, "X-API-Key": ADMIN}
            with TestClient(app) as client:
                response = client.request(method, path, json=body, headers=headers)
                metrics = client.get("/metrics")
                generated = client.get("/health")
            results[name] = {
                "rid": rid,
                "response": response,
                "metrics": metrics,
                "generated_id": generated.headers.get("x-request-id"),
                "lines": stream.getvalue().splitlines(),
            }
        yield results


@pytest.mark.parametrize("service", list(SERVICES))
def test_logs_are_json_lines_with_the_request_id(observed: dict[str, Any], service: str) -> None:
    seen = observed[service]
    assert seen["response"].status_code < 400, seen["response"].text
    assert seen["response"].headers["x-request-id"] == seen["rid"]  # echoed
    assert seen["generated_id"] and seen["generated_id"] != seen["rid"]  # one made up when absent
    entries = [json.loads(line) for line in seen["lines"]]  # every line is one JSON object
    assert entries and all(isinstance(e, dict) and e.keys() >= BASE_KEYS for e in entries)
    assert {e["service"] for e in entries} == {service}
    method, path = SERVICES[service][1:3]
    access = [e for e in entries if e["logger"] == "verticals.http" and e["path"] == path]
    assert len(access) == 1, entries
    assert access[0]["request_id"] == seen["rid"]
    assert (access[0]["method"], access[0]["status"]) == (method, seen["response"].status_code)


def test_every_service_logs_the_same_keys(observed: dict[str, Any]) -> None:
    shapes = {
        service: {
            frozenset(e) for e in map(json.loads, seen["lines"]) if e["logger"] == "verticals.http"
        }
        for service, seen in observed.items()
    }
    assert len({frozenset(s) for s in shapes.values()}) == 1, shapes


@pytest.mark.parametrize("service", list(SERVICES))
def test_metrics_are_prometheus_text(observed: dict[str, Any], service: str) -> None:
    metrics = observed[service]["metrics"]
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    requests = families["http_requests"].samples
    method, path = SERVICES[service][1:3]
    assert any(
        s.labels["service"] == service
        and (s.labels["method"], s.labels["route"]) == (method, path)
        and s.value >= 1
        for s in requests
    ), requests
    assert "http_request_seconds" in families


def test_dashboard_forwards_the_request_id(tmp_path: Path) -> None:
    """The dashboard's calls to a service carry the id of the request they serve, so the
    service logs them under the same id."""
    from verticals.core.registry import ModelRegistry
    from verticals.dashboard.api import build_app
    from verticals.dashboard.settings import DashboardSettings
    from verticals.serving.testing import LiveServer

    with restored_logging():
        news = _news(tmp_path / "news", None)
        with LiveServer(news) as server:  # its socket bound to port 0 first: no race
            settings = DashboardSettings(  # type: ignore[call-arg]
                admin_api_key=ADMIN, news_url=server.url
            )
            dashboard = build_app(settings, ModelRegistry(tmp_path / "registry"))
            stream = capture_logs()
            with TestClient(dashboard) as client:
                answer = client.get("/api/news", headers={"X-Request-ID": "obs-forwarded"})
    assert answer.status_code == 200 and answer.json()["available"] is True, answer.text
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    served = {
        e["path"]
        for e in entries
        if e["logger"] == "verticals.http" and e["request_id"] == "obs-forwarded"
    }
    assert {"/api/news", "/trends", "/alerts"} <= served, served
