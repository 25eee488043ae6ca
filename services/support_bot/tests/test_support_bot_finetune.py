"""Fine-tuning the encoder from FAQ paraphrases and feedback, gated on held-out MRR, and the
intent classifier (slow: real training runs on CPU, one epoch on a few hundred pairs)."""

from __future__ import annotations

import random
from typing import Any

import pytest


@pytest.mark.slow
def test_finetune_promotes_real_pairs_and_refuses_shuffled_pairs(
    tmp_path: Any, encoder: Any, settings_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate in both directions: an encoder trained on the knowledge base's own pairs beats
    the base encoder on held-out questions and is promoted; one trained on the same queries
    with their positives shuffled is worse and stays unpromoted."""
    from verticals.core.registry import ModelRegistry
    from verticals.support_bot.finetune import finetune
    from verticals.support_bot.pipeline import SupportBot, load_sample, read_questions

    settings = settings_factory(tmp_path)
    task = settings.encoder_task
    bot = SupportBot(settings, encoder=encoder, persist=False)
    bot.create_tenant("demo")
    load_sample(bot, "demo", settings.sample_dir)
    # feedback becomes training data: a thumbs-up and a staff resolution
    up = bot.chat("demo", "f1", "can I pay later with an invoice?")
    bot.feedback("demo", "f1", up.message_id, "up")
    handoff = bot.chat("demo", "f2", "who won the football match yesterday?")
    assert handoff.kind == "handoff" and handoff.handoff_id
    bot.staff_reply("demo", handoff.handoff_id, "see invoices", "pay-008", True)
    pairs = bot.training_pairs("demo")
    assert {"faq", "paraphrase", "feedback:up", "feedback:resolved"} <= {o for *_, o in pairs}
    # the labelled questions that are not training queries are held out
    queries = {q for q, *_ in pairs}
    questions = read_questions(settings.sample_dir / "questions.jsonl")
    held_out = [q for q in questions if q["question"] not in queries]
    assert len(held_out) > 100
    registry = ModelRegistry(tmp_path / "registry")

    positives = [p for _, p, _ in pairs]
    random.Random(0).shuffle(positives)
    shuffled = [(q, p, o) for (q, _, o), p in zip(pairs, positives, strict=True)]
    monkeypatch.setattr(bot, "training_pairs", lambda tenant: shuffled)
    refused = finetune(bot, "demo", held_out, epochs=1, registry=registry)
    monkeypatch.undo()
    assert refused["promoted"] is False, refused
    assert refused["candidate_mrr"] < refused["current_mrr"], refused
    assert registry.current_version(task) is None  # the base encoder stays

    result = finetune(bot, "demo", held_out, epochs=1, registry=registry)
    assert result["promoted"] is True, result
    assert result["pairs"] == len(pairs) and result["version"] == refused["version"] + 1
    assert registry.current_version(task) == result["version"]
    assert result["candidate_mrr"] > result["current_mrr"], result
    card = registry.card(task, result["version"])
    assert card["gate"]["candidate"]["mrr"] == result["candidate_mrr"]
    # recalibrated for the new encoder, in the form the service runs it
    version = f"{task}:v{result['version']}+{settings.encoder_form}"
    assert result["calibration"]["encoder"] == result["candidate_bot"].encoder.version == version


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
