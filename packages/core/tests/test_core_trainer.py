"""``trainer.fit`` directly, on a tiny regression network (no transformer): it learns, keeps
the best validation weights, stops early after ``patience`` evaluations without gain, counts
optimiser steps with gradient accumulation, and gives the heads their own learning rate."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from verticals.core import trainer
from verticals.core.config import TrainingConfig

ROWS = 64
X = torch.from_numpy(np.random.default_rng(0).normal(size=(ROWS, 4)).astype(np.float32))
Y = X @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


def mse(model: nn.Module, inputs: dict, targets: dict) -> torch.Tensor:
    return nn.functional.mse_loss(model(inputs["input_ids"]), targets["y"])


def batches(size: int) -> object:
    def make(order: np.ndarray) -> Iterator[tuple[dict, dict]]:
        for start in range(0, len(order), size):
            idx = torch.from_numpy(order[start : start + size])
            yield {"input_ids": X[idx]}, {"y": Y[idx]}

    return make


def config(**overrides: object) -> TrainingConfig:
    base = {"epochs": 5, "batch_size": 8, "learning_rate": 0.05, "warmup_ratio": 0.0}
    return TrainingConfig.model_validate({"patience": 0, **base, **overrides})


def test_learns_and_counts_steps_with_accumulation() -> None:
    trainer.seed_everything(0)
    model = nn.Linear(4, 1)

    def validate() -> float:
        with torch.no_grad():
            return -float(nn.functional.mse_loss(model(X), Y))

    before = validate()
    cfg = config(gradient_accumulation_steps=2, weight_decay=0.0, learning_rate=0.5)
    result = trainer.fit(model, mse, batches(8), ROWS, validate, cfg, show_progress=False)  # type: ignore[arg-type]
    assert result.best_score > before / 10  # the error fell to under a tenth
    assert result.steps == math.ceil(ROWS / 8 / 2) * 5  # 8 batches, 2 per step, 5 epochs
    assert [h["epoch"] for h in result.history] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert result.examples_per_rank == [ROWS * 5]
    assert not result.stopped_early and not model.training  # left in eval mode
    summary = result.summary("cpu", world_size=1)
    assert summary["steps"] == result.steps and summary["world_size"] == 1


def test_keeps_the_best_weights_and_stops_early() -> None:
    model = nn.Linear(4, 1)
    scores = iter([0.1, 0.9, 0.5, 0.4, 0.3])
    seen: list[torch.Tensor] = []

    def validate() -> float:
        seen.append(model.weight.detach().clone())
        return next(scores)

    cfg = config(patience=2)
    result = trainer.fit(model, mse, batches(8), ROWS, validate, cfg, show_progress=False)  # type: ignore[arg-type]
    assert result.stopped_early and len(result.history) == 4  # 0.9, then two without gain
    assert result.best_score == 0.9
    torch.testing.assert_close(model.weight.detach(), seen[1])  # the weights scored 0.9
    assert not torch.equal(seen[1], seen[3])


def test_head_parameters_get_their_own_learning_rate() -> None:
    body, head = nn.Linear(4, 4), nn.Linear(4, 1)
    model = nn.Sequential(body, head)
    frozen_body = body.weight.detach().clone()
    cfg = config(epochs=1, learning_rate=1e-12, head_learning_rate=0.05, weight_decay=0.0)
    before = head.weight.detach().clone()
    trainer.fit(
        model,
        mse,
        batches(8),
        ROWS,
        lambda: 0.0,
        cfg,
        list(head.parameters()),
        show_progress=False,  # type: ignore[arg-type]
    )
    torch.testing.assert_close(body.weight.detach(), frozen_body, atol=1e-8, rtol=0)
    assert (head.weight.detach() - before).abs().max() > 1e-3


@pytest.mark.parametrize("size", [1, 3])
def test_pair_batches_skip_a_lone_pair(size: int) -> None:
    from verticals.core.data import TextPairs

    class Tokenizer:
        def __call__(self, texts: list[str], **_: object) -> dict[str, torch.Tensor]:
            ids = torch.ones((len(texts), 2), dtype=torch.long)
            return {"input_ids": ids, "attention_mask": ids}

    pairs = TextPairs([f"q{i}" for i in range(size)], [f"p{i}" for i in range(size)])
    got = list(trainer.pair_batches(pairs, Tokenizer(), 2, 8, torch.device("cpu"), np.arange(size)))
    assert [len(q["input_ids"]) for q, _ in got] == ([2] if size == 3 else [])
