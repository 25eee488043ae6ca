"""The real services behind the dashboard, each a uvicorn server on a free 127.0.0.1 port over
temporary data (one encoder shared by the support bot and the recommender, loaded once: the
``encoder`` fixture of ``verticals.dashboard.testing``), for the
cross-service tests in this folder (the dashboard's own fixtures: ``verticals.dashboard.testing``):

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
from typing import Any

import httpx
import pytest

from verticals.dashboard.testing import SUPPORT_KEY, TENANT
from verticals.news_monitor.testing import demo_news
from verticals.serving.testing import LiveServer

FAQ_ENTRIES = 12
CATALOG_ITEMS = 40


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
