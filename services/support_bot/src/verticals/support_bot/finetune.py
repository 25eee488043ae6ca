"""Encoder fine-tuning from the knowledge base and feedback, with a promotion gate."""

from __future__ import annotations

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
    from verticals.core.training import TrainOutcome, train_and_gate

    pairs = bot.training_pairs(tenant)
    config = TrainConfig(
        task=bot.settings.encoder_task,
        kind="embedding",
        method="full",
        data=DataConfig(validation_fraction=0.1, test_fraction=0.1, split_seed=7),
        model=ModelConfig(max_length=128),
        training=TrainingConfig(
            epochs=epochs, batch_size=32, learning_rate=3e-5, patience=1, seed=13, device="cpu"
        ),
    )
    in_scope = [q for q in held_out if q.get("expected")]
    bots: dict[str, SupportBot] = {}

    def score_candidate(outcome: TrainOutcome) -> dict[str, Any]:
        encoder = Encoder.from_directory(outcome.path, bot.settings.encoder_form)
        bots["candidate"] = SupportBot(
            bot.settings, encoder=encoder, persist=False, store=bot.store
        )
        bots["candidate"].rebuild(tenant)
        return bots["candidate"].evaluate(tenant, in_scope, "dense")

    gated = train_and_gate(
        config,
        lambda _: bot.evaluate(tenant, in_scope, "dense"),  # the encoder the bot serves now
        score_candidate,
        lambda current, candidate: candidate["mrr"] > current["mrr"],
        registry,
        records=[{"query": q, "positive": p, "origin": o} for q, p, o in pairs],
        promote=promote,
    )
    candidate_bot = bots["candidate"]
    result: dict[str, Any] = {
        "pairs": len(pairs),
        "origins": {o: sum(1 for p in pairs if p[2] == o) for o in {p[2] for p in pairs}},
        "version": gated.outcome.version,
        "train_seconds": round(gated.outcome.seconds, 1),
        "pair_test_metrics": gated.outcome.metrics,
        "held_out_questions": len(in_scope),
        "current_encoder": gated.current["encoder"],
        "current_mrr": gated.current["mrr"],
        "candidate_mrr": gated.candidate["mrr"],
        "promoted": gated.promoted,
    }
    if gated.promoted:
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
    config = TrainConfig(
        task=bot.settings.intent_task_prefix + tenant,
        kind="classification",
        method="full",
        data=DataConfig(text_column="text", validation_fraction=0.15, test_fraction=0.15),
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
    records = [{"text": text, "category": label} for text, label in rows]
    outcome = run_training(config, registry, show_progress=False, records=records)
    bot.conversations.forget_intent(tenant)
    return {
        "task": outcome.task,
        "version": outcome.version,
        "current": outcome.current,
        "rows": len(rows),
        "metrics": outcome.metrics,
        "seconds": round(outcome.seconds, 1),
    }
