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
        assert result["calibration"]["encoder"] == "support-encoder:v1"
