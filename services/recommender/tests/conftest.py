from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from verticals.recommender.api import build_app
from verticals.recommender.generate import generate_catalog
from verticals.recommender.pipeline import Recommender
from verticals.recommender.schemas import ItemIn
from verticals.recommender.settings import RecommenderSettings

ADMIN = {"X-API-Key": "test-admin-key"}


@pytest.fixture(scope="session")
def encoder() -> Any:
    from verticals.core.inference import Encoder

    return Encoder.from_base()


@pytest.fixture(scope="session")
def catalog() -> list[ItemIn]:
    return [ItemIn(**item) for item in generate_catalog(80, seed=3)]


@pytest.fixture
def make_engine(tmp_path: Path, encoder: Any) -> Iterator[Callable[..., Recommender]]:
    engines: list[Recommender] = []

    def make(**overrides: Any) -> Recommender:
        settings = RecommenderSettings(
            data_dir=tmp_path, admin_api_key="test-admin-key", **overrides
        )
        engine = Recommender(settings, encoder=encoder)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def engine(make_engine: Callable[..., Recommender], catalog: list[ItemIn]) -> Recommender:
    engine = make_engine(variant_b_share=0.0)
    engine.upsert_items(catalog)
    return engine


@pytest.fixture
def client(engine: Recommender) -> Iterator[TestClient]:
    with TestClient(build_app(engine.settings, engine)) as client:
        yield client
