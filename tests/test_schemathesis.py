"""Contract tests: schemathesis (its own command line, as a user runs it) generates requests
from each service's OpenAPI schema (examples, coverage of every parameter's edges, random valid
and invalid data, and stateful sequences) against the real app, served by uvicorn on 127.0.0.1
over temporary data and the real default models, and runs EVERY check it has (the config's
``[checks] enabled = true``, the same set as ``--checks all``):
no server error, every status code, header, content type and body documented, schema-valid
requests accepted and schema-violating ones refused, 405 with a correct ``Allow`` header for
undocumented methods, authentication not ignored. What is switched off, and why, is in
``tests/schemathesis.toml``, next to each exception."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from verticals.news_monitor.settings import NewsSettings
from verticals.news_monitor.testing import demo_news
from verticals.serving.testing import LiveServer

TASK = NewsSettings.model_fields["model_task"].default

MAX_EXAMPLES = 10
"""Per operation and phase: the four runs together take about 2 minutes on 2 cores."""
ROOT_KEY = "test-schemathesis-root-key"
TENANT = "acme"
CONFIG = Path(__file__).with_name("schemathesis.toml")
ST = str(Path(sys.executable).parent / "st")


def run_schemathesis(url: str) -> None:
    """Every operation of the app's schema with every check; fails with schemathesis' report."""
    before = _served(url)
    started = time.perf_counter()
    result = subprocess.run(
        [
            ST,
            "--no-color",
            "--config-file",
            str(CONFIG),
            "run",
            f"{url}/openapi.json",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "20261130",
            "--no-shrink",
            "--workers",
            "1",
            "--header",
            f"X-API-Key: {ROOT_KEY}",
            "--request-timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = result.stdout + result.stderr
    print(f"{url}: schemathesis ran {time.perf_counter() - started:.1f}s\n{report[-1500:]}")
    assert result.returncode == 0, report[-30000:]
    operations = len(_operations(url))
    served = _served(url) - before
    assert served >= 10 * operations, f"{url}: {served} requests, {operations} operations"


def _operations(url: str) -> list[str]:
    import httpx

    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    return [f"{method} {path}" for path, item in paths.items() for method in item]


def _served(url: str) -> float:
    """Requests the app has answered so far, from its own Prometheus counter."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return sum(s.value for s in families["http_requests"].samples if s.name.endswith("_total"))


@pytest.fixture(scope="module")
def encoder() -> Any:
    from verticals.core.inference import Encoder

    return Encoder.from_base()


@pytest.fixture(scope="module")
def news_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The news API over a store that the monitor's batch path filled from the demo feed with
    the shipped default model (no consumer, so no broker)."""
    from verticals.news_monitor.api import build_app

    news = demo_news(tmp_path_factory.mktemp("news"))
    assert news.alerts, "the demo feed raised no alert"
    with LiveServer(build_app(news.settings, consume=False)) as server:
        yield server.url


@pytest.fixture(scope="module")
def support_url(tmp_path_factory: pytest.TempPathFactory, encoder: Any) -> Iterator[str]:
    """The support bot with tenant ``acme`` holding the first sample FAQ entries."""
    import httpx

    from verticals.support_bot.api import build_app
    from verticals.support_bot.pipeline import SupportBot
    from verticals.support_bot.settings import SupportSettings

    settings = SupportSettings(
        data_dir=tmp_path_factory.mktemp("support"),
        admin_api_key=ROOT_KEY,  # type: ignore[arg-type]
    )
    bot = SupportBot(settings, encoder=encoder)
    faq_lines = (settings.sample_dir / "faq.jsonl").read_text().splitlines()
    faq = [json.loads(line) for line in faq_lines[:15]]
    with LiveServer(build_app(settings, bot)) as server:
        url = server.url
        root = {"X-API-Key": ROOT_KEY}
        made = httpx.post(f"{url}/v1/tenants", json={"id": TENANT}, headers=root)
        assert made.status_code == 201, made.text
        added = httpx.post(
            f"{url}/v1/tenants/{TENANT}/faq", json={"entries": faq}, headers=root, timeout=60
        )
        assert added.status_code == 200, added.text
        yield url


@pytest.fixture(scope="module")
def recommender_url(tmp_path_factory: pytest.TempPathFactory, encoder: Any) -> Iterator[str]:
    """The recommender over a generated catalog with a few events."""
    import httpx

    from verticals.recommender.api import build_app
    from verticals.recommender.generate import generate_catalog
    from verticals.recommender.pipeline import Recommender
    from verticals.recommender.schemas import ItemIn
    from verticals.recommender.settings import RecommenderSettings

    settings = RecommenderSettings(
        data_dir=tmp_path_factory.mktemp("recommender"),
        admin_api_key=ROOT_KEY,  # type: ignore[arg-type]
    )
    engine = Recommender(settings, encoder=encoder)
    catalog = [ItemIn(**item) for item in generate_catalog(40, seed=3)]
    engine.upsert_items(catalog)
    with LiveServer(build_app(settings, engine)) as server:
        url = server.url
        events = [
            {"user_id": f"u{u}", "item_id": catalog[(u * 3 + i) % 40].id, "type": kind}
            for u in range(4)
            for i, kind in enumerate(["view", "click", "purchase"])
        ]
        sent = httpx.post(f"{url}/v1/events", json={"events": events})
        assert sent.status_code == 200, sent.text
        yield url
    engine.close()


@pytest.fixture(scope="module")
def dashboard_url(
    tmp_path_factory: pytest.TempPathFactory,
    news_url: str,
    support_url: str,
    recommender_url: str,
) -> Iterator[str]:
    """The dashboard over a registry holding the shipped news model, wired to the three."""
    from verticals.core.registry import ModelRegistry
    from verticals.dashboard.api import build_app
    from verticals.dashboard.settings import DashboardSettings
    from verticals.news_monitor.settings import shared_dir

    registry = ModelRegistry(tmp_path_factory.mktemp("dashboard") / "registry")
    registry.import_version(shared_dir() / "model")
    registry.import_version(shared_dir() / "model")
    settings = DashboardSettings(
        admin_api_key=ROOT_KEY,  # type: ignore[arg-type]
        news_url=news_url,
        support_url=support_url,
        recommender_url=recommender_url,
        support_admin_key=ROOT_KEY,  # type: ignore[arg-type]
        support_tenants=[TENANT],
    )
    with LiveServer(build_app(settings, registry)) as server:
        yield server.url


def test_news_monitor_api(news_url: str) -> None:
    run_schemathesis(news_url)


def test_support_bot_api(support_url: str) -> None:
    run_schemathesis(support_url)


def test_recommender_api(recommender_url: str) -> None:
    run_schemathesis(recommender_url)


def test_dashboard_api(dashboard_url: str) -> None:
    run_schemathesis(dashboard_url)


def test_every_service_is_covered() -> None:
    """A new service must be added here (and so get its schemathesis run)."""
    services = {p.name for p in (Path(__file__).resolve().parents[1] / "services").iterdir()}
    assert services <= {"news_monitor", "support_bot", "recommender", "dashboard"}


def test_the_config_runs_every_check_and_pins_known_values() -> None:
    """Every check on for every service; the pinned values are the fixtures' tenant and task."""
    import tomllib

    config = tomllib.loads(CONFIG.read_text())
    assert config["checks"]["enabled"] is True
    assert all(
        check.get("enabled", True) for check in config["checks"].values() if isinstance(check, dict)
    )
    pinned = {v for op in config["operations"] for v in op.get("parameters", {}).values()}
    assert pinned == {TENANT, TASK}
