"""Shared fixtures: one real encoder and one bot with the sample store per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from verticals.serving.testing import LiveServer

ROOT_KEY = "test-root-key"


def make_settings(data_dir: Path, **overrides: Any) -> Any:
    from verticals.support_bot.settings import SupportSettings

    return SupportSettings(data_dir=data_dir, admin_api_key=ROOT_KEY, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def encoder() -> Any:
    from verticals.core.inference import Encoder
    from verticals.support_bot.settings import SupportSettings

    return Encoder.from_base(form=SupportSettings().encoder_form)  # the form the service runs


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory, encoder: Any) -> dict[str, Any]:
    """A persisted bot with the sample store as tenant ``demo``, calibrated on validation."""
    from verticals.support_bot.cli import prepare_demo
    from verticals.support_bot.pipeline import SupportBot

    settings = make_settings(tmp_path_factory.mktemp("support"))
    bot = SupportBot(settings, encoder=encoder)
    demo = prepare_demo(bot, settings)
    return {"bot": bot, "settings": settings, "demo": demo}


@pytest.fixture(scope="session")
def client(sample: dict[str, Any]) -> Iterator[TestClient]:
    from verticals.support_bot.api import build_app

    app = build_app(sample["settings"], sample["bot"], sample["demo"])
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def demo_admin(sample: dict[str, Any]) -> str:
    return sample["demo"]["admin_key"]


@pytest.fixture(scope="session")
def widget(sample: dict[str, Any]) -> str:
    return sample["demo"]["key"]


def new_tenant(client: TestClient, tenant: str) -> dict[str, str]:
    r = client.post("/v1/tenants", json={"id": tenant}, headers={"X-API-Key": ROOT_KEY})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="session")
def root_key() -> str:
    return ROOT_KEY


@pytest.fixture(scope="session")
def make_tenant(client: TestClient) -> Any:
    return lambda tenant: new_tenant(client, tenant)


@pytest.fixture(scope="session")
def settings_factory() -> Any:
    return make_settings


@pytest.fixture(scope="session")
def live_server() -> Any:
    return LiveServer
