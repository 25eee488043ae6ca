from __future__ import annotations

from pathlib import Path

import pytest

from verticals.core.config import TrainConfig
from verticals.core.registry import ModelRegistry, RegistryError
from verticals.core.training import promote, run_training


def test_promotion_refuses_a_worse_model_then_force_and_rollback(
    trained, tmp_path: Path, sample_csv: Path, make_config
) -> None:
    registry, good = trained
    # A barely trained model on another split: it must lose when the current model is
    # re-scored on the candidate's own test split.
    raw = make_config(sample_csv, epochs=1, learning_rate=1e-7, head_learning_rate=1e-7)
    raw["data"]["split_seed"] = 5
    config = TrainConfig.model_validate(raw)
    bad = run_training(config, registry, show_progress=False)
    assert registry.current_version("mood-topic") == good.version  # not promoted by training

    with pytest.raises(RegistryError, match="refused.*below the current"):
        promote(registry, "mood-topic", bad.version)
    assert registry.current_version("mood-topic") == good.version

    forced = promote(registry, "mood-topic", bad.version, force=True)
    assert forced.forced and forced.previous == good.version
    assert registry.current_version("mood-topic") == bad.version
    assert registry.rollback("mood-topic") == good.version
    assert registry.current_version("mood-topic") == good.version
    with pytest.raises(RegistryError, match="no earlier model"):
        registry.rollback("mood-topic")


def test_unknown_task_and_version_are_clear(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(RegistryError, match="no current model for task 'nope'"):
        registry.path("nope")
    with pytest.raises(RegistryError, match="has no version 7"):
        registry.path("nope", 7)


def test_import_shipped_model(trained, tmp_path: Path) -> None:
    registry, outcome = trained
    other = ModelRegistry(tmp_path / "fresh")
    version = other.ensure(outcome.path)
    assert version == 1 and other.current_version("mood-topic") == 1
    assert other.ensure(outcome.path) == 1  # idempotent: a task that has a model keeps it
    assert (
        other.card("mood-topic")["metrics"]
        == registry.card("mood-topic", outcome.version)["metrics"]
    )
