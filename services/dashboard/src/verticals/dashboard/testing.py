"""Test fixtures of the dashboard, loaded as a pytest plugin by the root ``conftest.py``: a
registry holding the shipped news model and a really worse one, and a factory for dashboard apps
over it. The services behind the dashboard are started by ``tests/conftest.py`` (cross-service
tests live in ``tests/``); this module imports only the core, serving and the dashboard."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from verticals.serving.settings import shared_dir
from verticals.serving.testing import LiveServer

DASHBOARD_KEY = "test-dashboard-key"
SUPPORT_KEY = "test-support-root-key"
TENANT = "acme"
SHIPPED_NEWS_MODEL = shared_dir("news_monitor") / "model"


@pytest.fixture(scope="session")
def live_server() -> type[LiveServer]:
    return LiveServer


@pytest.fixture(scope="session")
def dashboard_key() -> str:
    return DASHBOARD_KEY


@pytest.fixture(scope="session")
def encoder() -> Any:
    """The packaged base encoder, loaded once (the support bot and recommender behind the
    dashboard share it)."""
    from verticals.core.inference import Encoder

    return Encoder.from_base()


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
    from verticals.core.data import LabelledTexts, split_indices
    from verticals.core.registry import ModelRegistry
    from verticals.core.training import load_dataset, run_training

    folder = tmp_path_factory.mktemp("worse")
    shipped = SHIPPED_NEWS_MODEL
    rows = _rows(shipped / "test.jsonl")
    path = folder / "rows.jsonl"
    config_data = json.loads((shipped / "card.json").read_text())["config"]
    config_data["data"]["path"] = str(path)
    config_data["training"].update(epochs=1, patience=0)
    config = TrainConfig.model_validate(config_data)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_dataset(config)  # the split the core will draw: stratified on the first head
    assert isinstance(data, LabelledTexts)
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

    reg = ModelRegistry(tmp_path / "registry")
    for _ in range(2):
        reg.import_version(SHIPPED_NEWS_MODEL)
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
