"""The ``reranking`` kind: a cross-encoder trained from the base encoder's weights with mined
hard negatives, gated against the base encoder's ranking, loaded back for inference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verticals.core.config import TrainConfig
from verticals.core.registry import ModelRegistry
from verticals.core.training import run_training

SAMPLE_FAQ = Path(__file__).resolve().parents[3] / "shared" / "support_bot" / "faq.jsonl"


def _config(data: Path, **reranking: object) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "task": "reranker",
            "kind": "reranking",
            "data": {"path": str(data), "test_fraction": 0.25, "validation_fraction": 0.15},
            "model": {"max_length": 64},
            "reranking": {"negatives": 1, "candidates": 8, **reranking},
            "training": {
                "epochs": 2,
                "batch_size": 16,
                "learning_rate": 5e-5,
                "head_learning_rate": 5e-3,
                "device": "cpu",
                "patience": 0,
                "seed": 5,
            },
        }
    )


@pytest.mark.slow
def test_reranker_learns_to_rank_answers(tmp_path: Path) -> None:
    """Trained on FAQ questions and their answers (mined hard negatives), the cross-encoder
    ranks the answers of questions it never saw far better than before training."""
    from verticals.core.reranking import Reranker

    faq = [json.loads(line) for line in SAMPLE_FAQ.read_text().splitlines()][:60]
    rows = [{"query": r["question"], "positive": r["answer"]} for r in faq]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    registry = ModelRegistry(tmp_path / "reg")
    outcome = run_training(_config(data), registry, show_progress=False)
    m = outcome.metrics
    assert m["mrr"] > m["mrr_untrained"] + 0.1, m  # learnt, on queries it never saw
    card = registry.card("reranker", outcome.version)
    assert card["kind"] == "reranking" and card["metrics"] == m
    assert card["gate"]["passed"] == (m["mrr"] > m["mrr_base"])  # current only past the gate
    assert (registry.current_version("reranker") == outcome.version) == card["gate"]["passed"]

    reranker = Reranker.from_directory(outcome.path)  # loads back for inference
    assert reranker.version == f"reranker:v{outcome.version}"
    scores = reranker.score(faq[0]["question"], [faq[0]["answer"], faq[30]["answer"]])
    assert scores.shape == (2,) and scores.min() >= 0.0 and scores.max() <= 1.0


def test_reranking_data_errors_are_clear(tmp_path: Path) -> None:
    data = tmp_path / "pairs.csv"
    data.write_text("query,answer\nq,a\n")
    with pytest.raises(ValueError, match="missing column"):
        run_training(_config(data), ModelRegistry(tmp_path / "reg"), show_progress=False)
    data.write_text("query,positive\nq1,a\nq2,b\n")
    with pytest.raises(ValueError, match="too few queries"):
        run_training(_config(data), ModelRegistry(tmp_path / "reg"), show_progress=False)
    assert not (tmp_path / "reg" / "reranker").exists()
    with pytest.raises(ValueError, match="takes no 'heads'"):
        TrainConfig.model_validate(
            {
                "task": "r",
                "kind": "reranking",
                "data": {"path": str(data)},
                "heads": {"h": {"column": "x"}},
            }
        )
