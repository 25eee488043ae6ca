"""Fixtures: the shipped model (loaded once), a real embedded broker, per-test topics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from verticals.news_monitor.broker import NoidaBroker, TansuBroker
from verticals.news_monitor.settings import NewsSettings, shared_dir
from verticals.news_monitor.testing import make_settings


@pytest.fixture(scope="session")
def registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry")


@pytest.fixture(scope="session")
def model(registry_dir: Path) -> Any:
    """The shipped default model, imported into a fresh registry as the service does."""
    from verticals.core.inference import Predictor
    from verticals.core.registry import ModelRegistry
    from verticals.news_monitor.settings import NewsSettings

    registry = ModelRegistry(registry_dir)
    registry.ensure(shared_dir() / "model")
    task = NewsSettings.model_fields["model_task"].default
    return Predictor.from_registry(task, registry=registry, batch_size=32)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NoidaBroker]:
    instance = NoidaBroker(tmp_path_factory.mktemp("noida"))
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def settings(broker: NoidaBroker, tmp_path: Path, request: pytest.FixtureRequest) -> NewsSettings:
    return make_settings(broker.bootstrap, request.node.nodeid, tmp_path)


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    instance = TansuBroker(tmp_path_factory.mktemp("tansu"))
    instance.start()
    yield instance
    instance.stop()
