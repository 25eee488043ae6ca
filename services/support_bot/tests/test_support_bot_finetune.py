"""Fine-tuning the encoder from FAQ paraphrases and feedback, gated on held-out MRR (slow:
one real training run on CPU)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.slow
def test_finetune_builds_pairs_trains_and_gates_promotion(
    tmp_path: Any, encoder: Any, settings_factory: Any
) -> None:
    from verticals.core.registry import ModelRegistry
    from verticals.support_bot.finetune import finetune
    from verticals.support_bot.pipeline import SupportBot, load_sample, read_questions

    settings = settings_factory(tmp_path)
    bot = SupportBot(settings, encoder=encoder, persist=False)
    bot.create_tenant("demo")
    load_sample(bot, "demo", settings.sample_dir)
    # feedback becomes training data: a thumbs-up and a staff resolution
    up = bot.chat("demo", "f1", "can I pay later with an invoice?")
    bot.feedback("demo", "f1", up.message_id, "up")
    handoff = bot.chat("demo", "f2", "zebra stripes on my invoice?")
    if handoff.handoff_id:
        bot.staff_reply("demo", handoff.handoff_id, "see invoices", "pay-008", True)
    pairs = bot.training_pairs("demo")
    origins = {o for _, _, o in pairs}
    assert {"faq", "paraphrase", "feedback:up"} <= origins
    questions = read_questions(settings.sample_dir / "questions.jsonl")
    validation = [q for q in questions if q["split"] == "validation"]
    registry = ModelRegistry(tmp_path / "registry")
    result = finetune(bot, "demo", validation, epochs=1, registry=registry)
    assert result["pairs"] == len(pairs) and result["version"] == 1
    card = registry.card("support-encoder", 1)
    assert card["support_eval"]["held_out_mrr"] == result["candidate_mrr"]
    current = registry.current_version("support-encoder")
    # promoted exactly when the candidate beat the base encoder on the held-out questions
    assert (current == 1) == (result["candidate_mrr"] > result["current_mrr"]) == result["promoted"]
    if result["promoted"]:
        # recalibrated for the new encoder, in the form the service runs it
        assert result["calibration"]["encoder"] == result["candidate_bot"].encoder.version
        assert result["calibration"]["encoder"] == f"support-encoder:v1+{settings.encoder_form}"


@pytest.mark.slow
def test_intent_classifier_is_trained_and_used(
    tmp_path: Any, encoder: Any, settings_factory: Any
) -> None:
    from verticals.core.registry import ModelRegistry
    from verticals.support_bot.finetune import train_intent
    from verticals.support_bot.pipeline import SupportBot, load_sample

    registry = ModelRegistry(tmp_path / "registry")
    settings = settings_factory(tmp_path)
    bot = SupportBot(settings, encoder=encoder, persist=False, registry=registry)
    bot.create_tenant("demo")
    load_sample(bot, "demo", settings.sample_dir)
    assert bot.chat("demo", "i0", "can I pay with PayPal").intent is None  # none trained yet
    result = train_intent(bot, "demo", epochs=3, registry=registry)
    assert result["current"] and result["task"] == "support-intent-demo"
    categories = {e.category for e in bot.store.entries("demo", kind="faq")}
    # better than always answering the most frequent category on held-out rows
    counts = [
        sum(1 for e in bot.store.entries("demo", kind="faq") if e.category == c) for c in categories
    ]
    assert result["metrics"]["accuracy"] > max(counts) / sum(counts)
    reply = bot.chat("demo", "i1", "can I pay with PayPal")
    assert reply.intent is not None and reply.intent["label"] in categories
