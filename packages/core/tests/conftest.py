from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[3]
SAMPLE_CSV = REPO / "shared" / "data" / "support_messages.csv"


def two_head_config(registry_data: Path, **training: object) -> dict:
    """A small two-head config on the shipped sample messages."""
    return {
        "task": "mood-topic",
        "method": "lora",
        "data": {
            "path": str(registry_data),
            "text_column": "message",
            "validation_fraction": 0.15,
            "test_fraction": 0.25,
        },
        "heads": {
            "mood": {"column": "mood", "labels": ["negative", "neutral", "positive"]},
            "topic": {"column": "topic"},
        },
        "model": {"max_length": 48},
        "training": {
            "epochs": 3,
            "batch_size": 16,
            "learning_rate": 5e-4,
            "head_learning_rate": 2e-3,
            "patience": 0,
            "seed": 3,
            "device": "cpu",
            **training,
        },
    }


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    return SAMPLE_CSV


@pytest.fixture(scope="session")
def make_config():
    return two_head_config


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """One real LoRA two-head training, shared by the tests that need a model."""
    from verticals.core.config import TrainConfig
    from verticals.core.registry import ModelRegistry
    from verticals.core.training import run_training

    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    outcome = run_training(
        TrainConfig.model_validate(two_head_config(SAMPLE_CSV)), registry, show_progress=False
    )
    return registry, outcome
