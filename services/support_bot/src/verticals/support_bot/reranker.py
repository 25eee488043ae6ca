"""The support bot's reranker, trained through the core (``kind: reranking``) on real
question/answer pairs nobody here wrote: FiQA (Stack Exchange personal finance), PrivacyQA
(with its expert-labelled negative sentences) and BoolQ (search queries and Wikipedia passages).
The Python, Debian and product FAQs stay out of training: they measure it."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

TRAIN_SETS = ("fiqa", "privacyqa", "boolq")


def training_rows(
    privacy_queries: int = 80, boolq_rows: int = 150, labelled_negatives: int = 3, seed: int = 7
) -> list[tuple[str, str, int]]:
    """(query, passage, label) rows: every FiQA pair, a seeded sample of PrivacyQA questions
    (their relevant sentences and up to ``labelled_negatives`` expert-labelled irrelevant ones)
    and of BoolQ pairs."""
    from verticals.support_bot import realqa

    rng = random.Random(seed)
    rows = [(q, p, 1) for q, p, _ in realqa.pairs("fiqa")]
    privacy = realqa.pairs("privacyqa")
    questions = sorted({q for q, _, y in privacy if y})
    rng.shuffle(questions)
    keep = set(questions[:privacy_queries])
    negatives: dict[str, int] = {}
    for q, p, y in privacy:
        if q in keep and (y or negatives.get(q, 0) < labelled_negatives):
            rows.append((q, p, y))
            if not y:
                negatives[q] = negatives.get(q, 0) + 1
    boolq = realqa.pairs("boolq")
    rng.shuffle(boolq)
    rows.extend(boolq[:boolq_rows])
    return rows


def train(
    registry: Any,
    folder: Path,
    task: str = "support-reranker",
    max_length: int = 64,
    negatives: int = 1,
    epochs: int = 1,
    max_queries: int | None = 560,
    **sizes: int,
) -> Any:
    """Write the training rows to ``folder`` and train the reranker with the core; the version
    becomes current only if it beats the base encoder's ranking on its test queries.

    Sized for a shared 2-core CPU: 560 queries (seeded sample), one dense and one lexical hard
    negative each besides PrivacyQA's labelled ones, 64 tokens of query plus passage, one epoch
    (about 1,700 training pairs)."""
    from verticals.core.config import (
        DataConfig,
        ModelConfig,
        RerankingConfig,
        TrainConfig,
        TrainingConfig,
    )
    from verticals.core.data import write_table
    from verticals.core.training import run_training

    header = ["query", "positive", "label"]
    path = write_table(folder / "reranker-pairs.csv", header, training_rows(**sizes))
    config = TrainConfig(
        task=task,
        kind="reranking",
        data=DataConfig(
            path=path,
            validation_fraction=0.1,
            test_fraction=0.1,
            split_seed=7,
            max_rows=max_queries,
        ),
        model=ModelConfig(max_length=max_length),
        training=TrainingConfig(
            epochs=epochs,
            batch_size=16,
            learning_rate=4e-5,
            head_learning_rate=1e-3,
            patience=0,
            seed=13,
            device="cpu",
        ),
        reranking=RerankingConfig(negatives=negatives),
    )
    return run_training(config, registry, show_progress=False)
