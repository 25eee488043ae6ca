"""The second encoder's student, trained through the core (``kind: distillation``): MiniLM plus a
linear projection learns to map a question to the vector the second encoder (all-mpnet-base-v2)
gives the same question (Reimers & Gurevych 2020). Entries keep the second encoder's vectors
from ingest (its cache); at question time only the student runs, at MiniLM's cost.

The training text is real questions nobody here wrote and that no measured FAQ holds: FiQA
(Stack Exchange personal finance), PrivacyQA (questions about apps' privacy policies) and a
seeded sample of BoolQ (search-engine queries). The Python FAQ stays out (it is the tuning set
the student is checked on), and so do the Debian and Savvly FAQs (held out of everything)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verticals.support_bot.rescoring import Rescorer

TRAIN_SETS = ("fiqa", "privacyqa", "boolq")


def training_questions(boolq: int = 6000, seed: int = 0) -> list[str]:
    """Every FiQA and PrivacyQA question and ``boolq`` seeded BoolQ queries, each once."""
    from verticals.support_bot import realqa

    questions = [q for q, _, _ in realqa.pairs("fiqa")]
    questions += [q for q, _, _ in realqa.pairs("privacyqa")]
    sample = [q for q, _, _ in realqa.pairs("boolq")]
    random.Random(seed).shuffle(sample)
    questions += sample[:boolq]
    return list(dict.fromkeys(q.strip() for q in questions if q.strip()))


class CachedTeacher:
    """The second encoder as the teacher, its vectors read from and added to its content-
    addressed cache (a rerun encodes nothing it encoded before)."""

    def __init__(self, rescorer: Rescorer) -> None:
        self.rescorer = rescorer
        self.version = rescorer.name

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        for start in range(0, len(texts), 1000):  # saved as it goes: a stopped run keeps them
            self.rescorer.warm(list(texts[start : start + 1000]))
        return self.rescorer.vectors(texts)


def train_student(
    registry: Any,
    folder: Path,
    rescorer: Rescorer,
    task: str = "support-rescore-student",
    questions: Sequence[str] | None = None,
    epochs: int = 2,
    max_length: int = 64,
) -> Any:
    """Write the questions to ``folder`` and distil the rescorer's encoder into MiniLM with the
    core; the version becomes current only when its test questions' cosine to the teacher beats
    the starting point's (frozen MiniLM and the least-squares projection)."""
    from verticals.core.config import (
        DataConfig,
        DistillationConfig,
        ModelConfig,
        TrainConfig,
        TrainingConfig,
    )
    from verticals.core.data import write_table
    from verticals.core.distillation import train_distillation

    rows = ([q] for q in (questions or training_questions()))
    path = write_table(folder / "student-questions.csv", ["text"], rows)
    config = TrainConfig(
        task=task,
        kind="distillation",
        data=DataConfig(path=path, validation_fraction=0.05, test_fraction=0.1, split_seed=7),
        model=ModelConfig(max_length=max_length),
        training=TrainingConfig(
            epochs=epochs,
            batch_size=32,
            learning_rate=1e-4,
            head_learning_rate=1e-3,
            warmup_ratio=0.05,
            patience=0,
            seed=13,
            device="cpu",
        ),
        distillation=DistillationConfig(teacher=rescorer.name),
    )
    return train_distillation(config, registry, False, True, CachedTeacher(rescorer))
