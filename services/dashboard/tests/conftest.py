"""The real services behind the dashboard, each a uvicorn server on a free 127.0.0.1 port over
temporary data (one encoder shared by the support bot and the recommender, loaded once):

- news monitor: its API (no consumer, so no broker) over a store filled by the monitor's own
  batch path (decode, classify with the shipped default model, alert engine, save_batch) from the
  demo feed, which holds a scripted spike on HLVB;
- support bot: tenant ``acme`` with the first FAQ entries of the sample store, one question it
  answers and one it hands off (created through its HTTP API);
- recommender: a generated catalog and a few events.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from verticals.news_monitor.settings import NewsSettings
from verticals.news_monitor.testing import demo_news
from verticals.serving.testing import LiveServer

TASK = NewsSettings.model_fields["model_task"].default

DASHBOARD_KEY = "test-dashboard-key"
SUPPORT_KEY = "test-support-root-key"
TENANT = "acme"
FAQ_ENTRIES = 12
CATALOG_ITEMS = 40


@pytest.fixture(scope="session")
def live_server() -> type[LiveServer]:
    return LiveServer


@pytest.fixture(scope="session")
def dashboard_key() -> str:
    return DASHBOARD_KEY


@pytest.fixture(scope="session")
def encoder() -> Any:
    from verticals.core.inference import Encoder

    return Encoder.from_base()


# ---- news monitor ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def news_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from verticals.news_monitor.api import build_app

    news = demo_news(tmp_path_factory.mktemp("news"))
    assert any(a.key == "ticker:HLVB" for a in news.alerts), "the demo spike raised no alert"
    with LiveServer(build_app(news.settings, consume=False)) as server:
        yield {"url": server.url, "store": news.store, "add": news.add}


# ---- support bot -----------------------------------------------------------------------------
_questions = itertools.count(1)


def handoff_question() -> str:
    """A fresh question far from a furniture shop's FAQ: the bot hands it off."""
    return f"What is the capital of Australia? (question {next(_questions)})"


@pytest.fixture(scope="session")
def support_service(
    tmp_path_factory: pytest.TempPathFactory, encoder: Any
) -> Iterator[dict[str, Any]]:
    from verticals.support_bot.api import build_app
    from verticals.support_bot.pipeline import SupportBot
    from verticals.support_bot.settings import SupportSettings

    settings = SupportSettings(
        data_dir=tmp_path_factory.mktemp("support"),
        admin_api_key=SUPPORT_KEY,  # type: ignore[arg-type]
    )
    bot = SupportBot(settings, encoder=encoder)
    faq = [
        json.loads(line)
        for line in (settings.sample_dir / "faq.jsonl").read_text().splitlines()[:FAQ_ENTRIES]
    ]
    with LiveServer(build_app(settings, bot)) as server:
        root = {"X-API-Key": SUPPORT_KEY}
        made = httpx.post(
            f"{server.url}/v1/tenants",
            json={"id": TENANT, "name": "Acme (test)"},
            headers=root,
            timeout=60,  # a loaded machine: not httpx's 5 s
        )
        assert made.status_code == 201, made.text
        admin = {"X-API-Key": made.json()["admin_key"]}
        added = httpx.post(
            f"{server.url}/v1/tenants/{TENANT}/faq",
            json={"entries": faq},
            headers=admin,
            timeout=60,
        )
        assert added.status_code == 200 and added.json()["count"] == FAQ_ENTRIES, added.text

        def chat(message: str) -> dict[str, Any]:
            body = {"tenant": TENANT, "session_id": f"s{next(_questions)}", "message": message}
            r = httpx.post(f"{server.url}/v1/chat", json=body, headers=admin, timeout=30)
            assert r.status_code == 200, r.text
            reply: dict[str, Any] = r.json()
            return reply

        assert chat(faq[0]["question"])["kind"] == "answer"
        yield {"url": server.url, "chat": chat, "faq": faq, "admin_key": admin["X-API-Key"]}


@pytest.fixture
def new_handoff(support_service: dict[str, Any]) -> Callable[[], tuple[int, str]]:
    """Ask the support bot something it hands off; returns (handoff id, question)."""

    def make() -> tuple[int, str]:
        question = handoff_question()
        reply = support_service["chat"](question)
        assert reply["kind"] == "handoff", reply
        return int(reply["handoff_id"]), question

    return make


# ---- recommender -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def recommender_service(
    tmp_path_factory: pytest.TempPathFactory, encoder: Any
) -> Iterator[dict[str, Any]]:
    from verticals.recommender.api import build_app
    from verticals.recommender.generate import generate_catalog
    from verticals.recommender.pipeline import Recommender
    from verticals.recommender.schemas import ItemIn
    from verticals.recommender.settings import RecommenderSettings

    settings = RecommenderSettings(
        data_dir=tmp_path_factory.mktemp("recommender"), admin_api_key="test-recommender-key"
    )
    engine = Recommender(settings, encoder=encoder)
    catalog = [ItemIn(**item) for item in generate_catalog(CATALOG_ITEMS, seed=3)]
    engine.upsert_items(catalog)
    with LiveServer(build_app(settings, engine)) as server:
        events = [
            {"user_id": f"u{u}", "item_id": catalog[(u * 3 + i) % CATALOG_ITEMS].id, "type": t}
            for u in range(4)
            for i, t in enumerate(["view", "click", "purchase"])
        ]
        r = httpx.post(f"{server.url}/v1/events", json={"events": events})
        assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
        yield {"url": server.url, "catalog": catalog, "users": 4}
    engine.close()


# ---- the registry and the dashboard ------------------------------------------------------------
def _rows(path: Path) -> list[dict[str, Any]]:
    """JSON lines (split on newlines only: tweets may hold U+2028)."""
    return [json.loads(line) for line in path.read_text().split("\n") if line]


@pytest.fixture(scope="session")
def worse_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A really worse news model: the shipped model's config, trained one epoch on the shipped
    model's own test rows with the texts shuffled across labels, except in its own test split,
    whose rows keep their real labels (so re-scoring the current model on it is meaningful)."""
    import random

    from verticals.core.config import TrainConfig
    from verticals.core.data import split_indices
    from verticals.core.registry import ModelRegistry
    from verticals.core.training import load_dataset, run_training
    from verticals.news_monitor.settings import shared_dir

    folder = tmp_path_factory.mktemp("worse")
    shipped = shared_dir() / "model"
    rows = _rows(shipped / "test.jsonl")
    path = folder / "rows.jsonl"
    config_data = json.loads((shipped / "card.json").read_text())["config"]
    config_data["data"]["path"] = str(path)
    config_data["training"].update(epochs=1, patience=0)
    config = TrainConfig.model_validate(config_data)
    assert config.task == TASK
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_dataset(config)  # the split the core will draw: stratified on the first head
    d = config.data
    first = data.heads[0].name
    split = split_indices(
        len(data), d.validation_fraction, d.test_fraction, d.split_seed, data.targets[first]
    )
    movable = split.train + split.validation
    texts = [rows[i]["text"] for i in movable]
    random.Random(0).shuffle(texts)
    for i, text in zip(movable, texts, strict=True):
        rows[i] = {**rows[i], "text": text}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    outcome = run_training(config, ModelRegistry(folder / "registry"), show_progress=False)
    real = {json.dumps(r, sort_keys=True) for r in _rows(shipped / "test.jsonl")}
    for row in _rows(outcome.path / "test.jsonl"):  # its test rows are real rows, unshuffled
        assert json.dumps(row, sort_keys=True) in real, row
    return outcome.path


@pytest.fixture
def registry(tmp_path: Path, worse_model: Path) -> Any:
    """A registry holding the shipped news model twice (v1 current, v2 as good: the same card,
    so the same score on the same test set) and a really worse model as v3 (trained on shuffled
    labels, its own real test set: the registry re-scores v1 on it and refuses v3)."""
    from verticals.core.registry import ModelRegistry
    from verticals.news_monitor.settings import shared_dir

    reg = ModelRegistry(tmp_path / "registry")
    for _ in range(2):
        reg.import_version(shared_dir() / "model")
    reg.import_version(worse_model)
    return reg


@pytest.fixture
def make_dashboard(registry: Any) -> Callable[..., Any]:
    """A dashboard app over ``registry``; upstream URLs and settings as given."""
    from verticals.dashboard.api import build_app
    from verticals.dashboard.settings import DashboardSettings

    def make(**overrides: Any) -> Any:
        values: dict[str, Any] = {
            "admin_api_key": DASHBOARD_KEY,
            "support_admin_key": SUPPORT_KEY,
            "support_tenants": [TENANT],
            **overrides,
        }
        return build_app(DashboardSettings(**values), registry)

    return make


@pytest.fixture
def services(
    news_service: dict[str, Any],
    support_service: dict[str, Any],
    recommender_service: dict[str, Any],
) -> dict[str, Any]:
    return {
        "news_url": news_service["url"],
        "support_url": support_service["url"],
        "recommender_url": recommender_service["url"],
    }
