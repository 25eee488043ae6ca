"""The ``distillation`` kind: a student (MiniLM plus a linear projection) learns a teacher's
vectors by MSE, gated against its starting point (frozen MiniLM and the least-squares map),
and loads back as an ordinary encoder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from verticals.core.config import TrainConfig
from verticals.core.registry import ModelRegistry
from verticals.core.training import run_training

SAMPLE_FAQ = Path(__file__).resolve().parents[3] / "shared" / "support_bot" / "faq.jsonl"


def _sentences() -> list[str]:
    """The sample FAQ's questions and the sentences of its answers."""
    out = []
    for line in SAMPLE_FAQ.read_text().splitlines():
        row = json.loads(line)
        out.append(row["question"])
        out += [s for s in re.split(r"(?<=[.!?])\s+", row["answer"]) if len(s.split()) >= 4]
    return list(dict.fromkeys(out))


def _teacher() -> Any:
    """A real, different sentence encoder of twice the width: MiniLM's mean-pooled second layer
    beside its last layer's [CLS] state (768-d), which no linear map of the student's
    mean-pooled, last-layer vector reproduces."""
    import torch

    from verticals.core.config import DEFAULT_BASE_MODEL
    from verticals.core.inference import Encoder, TorchBackend
    from verticals.core.modeling import load_encoder, load_tokenizer, resolve_base_model
    from verticals.core.networks import mean_pool

    class EarlyMeanAndCls(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = load_encoder(DEFAULT_BASE_MODEL)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            states = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
            ).hidden_states
            return torch.cat([mean_pool(states[2], attention_mask), states[-1][:, 0]], dim=-1)

    tokenizer = load_tokenizer(resolve_base_model(DEFAULT_BASE_MODEL))
    return Encoder(TorchBackend(EarlyMeanAndCls(), "cpu"), tokenizer, max_length=32)


@pytest.mark.slow
def test_student_learns_the_teachers_vectors(tmp_path: Path) -> None:
    """On sentences it never saw, the trained student's vectors are closer to the teacher's
    than its starting point's (lower MSE, higher cosine); it passes the gate, becomes current
    and loads back as an encoder of the teacher's width."""
    from verticals.core.inference import Encoder

    sentences = _sentences()
    data = tmp_path / "sentences.csv"
    data.write_text(pd.DataFrame({"text": sentences}).to_csv(index=False))
    config = TrainConfig.model_validate(
        {
            "task": "student",
            "kind": "distillation",
            "data": {"path": str(data), "test_fraction": 0.25, "validation_fraction": 0.1},
            "model": {"max_length": 32},
            "distillation": {"teacher": "early-mean-and-cls"},
            "training": {
                "epochs": 2,
                "batch_size": 16,
                "learning_rate": 2e-4,
                "head_learning_rate": 1e-3,
                "device": "cpu",
                "patience": 0,
                "seed": 3,
            },
        }
    )
    registry = ModelRegistry(tmp_path / "reg")
    teacher = _teacher()
    from verticals.core.distillation import train_distillation

    outcome = train_distillation(config, registry, False, True, teacher)
    m = outcome.metrics
    assert m["sentences"] >= 50
    assert m["mse"] < m["mse_start"] * 0.95, m  # learnt, on held-out sentences
    assert m["cosine"] > m["cosine_start"] + 0.003, m
    card = registry.card("student", outcome.version)
    assert card["kind"] == "embedding" and card["method"] == "distillation"
    assert card["gate"]["passed"] and registry.current_version("student") == outcome.version

    student = Encoder.from_registry("student", registry=registry)
    probe = ["How long does delivery take?", "Can I pay by bank transfer?"]
    vectors = student.encode(probe)
    assert vectors.shape == (2, 768)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert float(np.mean(np.sum(vectors * teacher.encode(probe), axis=1))) > 0.5


def test_distillation_config_takes_no_heads(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="takes no 'heads'"):
        TrainConfig.model_validate(
            {
                "task": "student",
                "kind": "distillation",
                "data": {"path": str(tmp_path / "x.csv")},
                "heads": {"a": {"column": "a"}},
            }
        )


def test_too_few_sentences_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "few.csv"
    data.write_text("text\none sentence\nanother one\n\n")
    config = TrainConfig.model_validate(
        {"task": "student", "kind": "distillation", "data": {"path": str(data)}}
    )
    with pytest.raises(ValueError, match="too few sentences"):
        run_training(config, ModelRegistry(tmp_path / "reg"), show_progress=False)
