"""Property-based API tests: schemathesis generates requests from each service's OpenAPI schema
(valid and invalid ones) against the real app, served by uvicorn on 127.0.0.1 over temporary
data and the real default models, and checks that no request gets a server error and that every
documented response matches its schema. Slow: run with `make test-slow`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from verticals.news_monitor import TASK
from verticals.news_monitor.testing import demo_news
from verticals.serving.testing import LiveServer

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 50
"""Per operation and generation mode (valid, then invalid requests): ~40 operations x 2 x 50
requests keep the whole file within a few minutes on 2 cores."""
ROOT_KEY = "test-schemathesis-root-key"
TENANT = "acme"
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def run_schemathesis(url: str, known: dict[str, str] | None = None) -> list[str]:
    """Every operation of the app's OpenAPI schema, with generated valid and invalid requests:
    the failed checks, one entry each. ``known`` values (an existing tenant, say) are pinned in
    the path, and in valid requests' query and JSON body too, to get past the 404s."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, f"{url}: no operations in the schema"
    failures: list[str] = []
    before = _served(url)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, known or {})
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong (no parameters)
            except (Exception, BaseExceptionGroup) as exc:  # failed checks: report all at the end
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:1500]}")
    served = _served(url) - before
    assert served >= 10 * len(operations), f"{url}: {served} requests, {len(operations)} operations"
    return failures


def _served(url: str) -> float:
    """Requests the app has answered so far, from its own Prometheus counter."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return sum(s.value for s in families["http_requests"].samples if s.name.endswith("_total"))


def _fuzz(operation: Any, mode: GenerationMode, known: dict[str, str]) -> None:
    pinned = {k: v for k, v in known.items() if f"{{{k}}}" in operation.path}

    @given(case=operation.as_strategy(mode, path_parameters=pinned or None))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # report, do not shrink
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        if mode is GenerationMode.POSITIVE:
            for part in (case.query, case.body):
                if isinstance(part, dict):
                    part.update({k: v for k, v in known.items() if k in part})
        case.call_and_validate(headers={"X-API-Key": ROOT_KEY}, checks=CHECKS, timeout=60)

    check()


@pytest.fixture(scope="module")
def encoder() -> Any:
    from verticals.core.inference import Encoder

    return Encoder.from_base()


@pytest.fixture(scope="module")
def news_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The news API over a store that the monitor's batch path filled from the demo feed with
    the shipped default model (no consumer, so no broker)."""
    from verticals.news_monitor.service import build_app

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
    failures = run_schemathesis(news_url)
    assert not failures, "\n\n".join(failures)


def test_support_bot_api(support_url: str) -> None:
    failures = run_schemathesis(support_url, {"tenant": TENANT})
    assert not failures, "\n\n".join(failures)


def test_recommender_api(recommender_url: str) -> None:
    failures = run_schemathesis(recommender_url)
    assert not failures, "\n\n".join(failures)


def test_dashboard_api(dashboard_url: str) -> None:
    failures = run_schemathesis(dashboard_url, {"task": TASK})
    assert not failures, "\n\n".join(failures)


def test_every_service_is_covered() -> None:
    """A new service must be added here (and so get its schemathesis run)."""
    services = {p.name for p in (Path(__file__).resolve().parents[1] / "services").iterdir()}
    assert services <= {"news_monitor", "support_bot", "recommender", "dashboard"}
