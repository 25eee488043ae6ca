"""Encoder fine-tuning from the knowledge base and feedback, with a promotion gate."""

from __future__ import annotations

import csv
import time
from typing import Any

from verticals.support_bot.pipeline import SupportBot


def finetune(
    bot: SupportBot,
    tenant: str,
    held_out: list[dict[str, Any]],
    epochs: int = 2,
    registry: Any = None,
    promote: bool = True,
) -> dict[str, Any]:
    """Train on (query, positive) pairs with the core; compare dense MRR on ``held_out`` (never
    trained on) against the current encoder (or the base); promote and recalibrate if better."""
    from verticals.core.config import DataConfig, ModelConfig, TrainConfig, TrainingConfig
    from verticals.core.inference import Encoder
    from verticals.core.registry import ModelRegistry
    from verticals.core.training import run_training

    registry = registry or ModelRegistry.default()
    pairs = bot.training_pairs(tenant)
    folder = bot.settings.data_dir / "finetune"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"pairs-{tenant}-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query", "positive", "origin"])
        writer.writerows(pairs)
    config = TrainConfig(
        task=bot.settings.encoder_task,
        kind="embedding",
        method="full",
        data=DataConfig(path=path, validation_fraction=0.1, test_fraction=0.1, split_seed=7),
        model=ModelConfig(max_length=128),
        training=TrainingConfig(
            epochs=epochs, batch_size=32, learning_rate=3e-5, patience=1, seed=13, device="cpu"
        ),
    )
    outcome = run_training(config, registry, show_progress=False, first_becomes_current=False)
    in_scope = [q for q in held_out if q.get("expected")]
    current = bot.evaluate(tenant, in_scope, "dense")
    candidate_bot = SupportBot(
        bot.settings,
        encoder=Encoder.from_directory(outcome.path, bot.settings.encoder_form),
        persist=False,
        store=bot.store,
    )
    candidate_bot.rebuild(tenant)
    candidate = candidate_bot.evaluate(tenant, in_scope, "dense")
    better = candidate["mrr"] > current["mrr"]
    result: dict[str, Any] = {
        "pairs": len(pairs),
        "pairs_file": str(path),
        "origins": {o: sum(1 for p in pairs if p[2] == o) for o in {p[2] for p in pairs}},
        "version": outcome.version,
        "train_seconds": round(outcome.seconds, 1),
        "pair_test_metrics": outcome.metrics,
        "held_out_questions": len(in_scope),
        "current_encoder": current["encoder"],
        "current_mrr": current["mrr"],
        "candidate_mrr": candidate["mrr"],
        "promoted": False,
    }
    registry.update_card(
        bot.settings.encoder_task,
        outcome.version,
        support_eval={"held_out_mrr": candidate["mrr"], "baseline_mrr": current["mrr"]},
    )
    if better and promote:
        registry.promote(bot.settings.encoder_task, outcome.version, force=True)
        result["promoted"] = True
        if any(not q.get("expected") for q in held_out):
            result["calibration"] = candidate_bot.calibrate(tenant, held_out)
        result["next"] = "restart the service: indexes are re-encoded with the new encoder"
    result["candidate_bot"] = candidate_bot
    return result


def train_intent(
    bot: SupportBot, tenant: str, epochs: int = 3, registry: Any = None
) -> dict[str, Any]:
    """Train the tenant's optional intent classifier with the core: FAQ questions and their
    paraphrases labelled with the entry's category. The first version becomes current."""
    from verticals.core.config import (
        DataConfig,
        HeadConfig,
        ModelConfig,
        TrainConfig,
        TrainingConfig,
    )
    from verticals.core.registry import ModelRegistry
    from verticals.core.training import run_training
    from verticals.support_bot.text import InputError

    registry = registry or ModelRegistry.default()
    rows = [
        (text, e.category)
        for e in bot.store.entries(tenant, kind="faq")
        if e.category
        for text in [e.title, *(e.paraphrases or [])]
    ]
    if len({label for _, label in rows}) < 2:
        raise InputError(f"tenant {tenant!r} needs FAQ entries in at least two categories")
    folder = bot.settings.data_dir / "finetune"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"intent-{tenant}-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    config = TrainConfig(
        task=bot.settings.intent_task_prefix + tenant,
        kind="classification",
        method="full",
        data=DataConfig(
            path=path, text_column="text", validation_fraction=0.15, test_fraction=0.15
        ),
        heads={"category": HeadConfig(column="category")},
        model=ModelConfig(max_length=48),
        training=TrainingConfig(
            epochs=epochs,
            batch_size=16,
            learning_rate=5e-5,
            head_learning_rate=2e-3,
            seed=13,
            device="cpu",
        ),
    )
    outcome = run_training(config, registry, show_progress=False)
    bot.conversations.forget_intent(tenant)
    return {
        "task": outcome.task,
        "version": outcome.version,
        "current": outcome.current,
        "rows": len(rows),
        "metrics": outcome.metrics,
        "seconds": round(outcome.seconds, 1),
    }
