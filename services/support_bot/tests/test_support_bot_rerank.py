"""Reranking in the bot: the cross-encoder re-orders the fused top candidates, its relevance is
the confidence the policy applies to, and an unrelated entry is never answered however close its
cosine."""

from __future__ import annotations

from typing import Any

import pytest


def _candidate(entry_id: str, cosine: float, relevance: float | None, prob: float = 0.5) -> Any:
    from verticals.support_bot.candidates import Candidate
    from verticals.support_bot.text import EntryIn

    entry = EntryIn(id=entry_id, title=entry_id, body="...")
    return Candidate(1, entry, 0.0, cosine, prob, relevance)


def test_relevance_decides_when_reranked() -> None:
    from verticals.support_bot.policy import Policy, decide

    policy = Policy(threshold=0.5, margin=0.1, temperature=0.02, calibrated=False)
    # the velvet-armchair case: a close cosine on an unrelated entry, which the reranker rejects
    unrelated = [_candidate("candles", 0.62, 0.08), _candidate("sofa-care", 0.58, 0.05)]
    assert decide(unrelated, policy) == "handoff"
    clear = [_candidate("pets", 0.41, 0.93), _candidate("candles", 0.60, 0.20)]
    assert decide(clear, policy) == "answer"  # the reranker's relevance, not the cosine
    close = [_candidate("a", 0.5, 0.90), _candidate("b", 0.5, 0.85)]
    assert decide(close, policy) == "clarify"
    # without a reranker the cosine still decides
    plain = Policy(threshold=0.3, margin=0.1, temperature=0.02, calibrated=False)
    assert decide([_candidate("a", 0.62, None, 0.9), _candidate("b", 0.2, None, 0.1)], plain) == (
        "answer"
    )


@pytest.fixture(scope="module")
def untrained_reranker() -> Any:
    """A real cross-encoder (the base weights and an untrained head): ordering and plumbing only."""
    import torch

    from verticals.core.modeling import load_encoder, load_tokenizer, resolve_base_model
    from verticals.core.reranking import Reranker, build_cross_encoder

    torch.manual_seed(0)
    base = "sentence-transformers/all-MiniLM-L6-v2"
    model = build_cross_encoder(load_encoder(base))
    card = {"task": "support-reranker", "version": 1, "kind": "reranking"}
    return Reranker(model, load_tokenizer(resolve_base_model(base)), 64, card)


def test_bot_reranks_and_calibrates_on_relevance(
    tmp_path: Any, encoder: Any, settings_factory: Any, untrained_reranker: Any
) -> None:
    from verticals.support_bot.pipeline import SupportBot, load_sample, read_questions

    settings = settings_factory(tmp_path, rerank_top=4)
    bot = SupportBot(settings, encoder=encoder, persist=False, reranker=untrained_reranker)
    bot.create_tenant("demo")
    load_sample(bot, "demo", settings.sample_dir)
    found = bot.retrieve("demo", "can I pay later with an invoice?")
    top = [c.relevance for c in found[:4]]
    assert all(r is not None and 0.0 <= r <= 1.0 for r in top)
    assert top == sorted(top, reverse=True)  # type: ignore[type-var]
    assert all(c.relevance is None for c in found[4:])
    assert bot.retrieve("demo", "invoice", mode="dense", rerank=False)[0].relevance is None
    policy = bot.policy("demo")
    # uncalibrated: the threshold comes from the knowledge base, on the relevance scale
    assert policy.threshold == bot.thresholds.get("demo") and not policy.calibrated
    assert 0.0 <= policy.threshold <= 1.0
    # calibration is on the reranker's relevance and holds only for this reranker
    questions = read_questions(settings.sample_dir / "questions.jsonl")
    mixed = [q for q in questions if q["expected"]][:12] + [
        q for q in questions if not q["expected"]
    ][:8]
    calibration = bot.calibrate("demo", mixed)
    assert calibration["reranker"] == "support-reranker:v1"
    assert bot.policy("demo").calibrated
    plain = SupportBot(settings, encoder=encoder, persist=False, store=bot.store, reranker=False)
    assert not plain.policy("demo").calibrated  # calibrated for the reranker, not for cosines
    reply = bot.chat("demo", "s1", "can I pay later with an invoice?")
    assert reply.confidence == pytest.approx(reply.candidates[0].relevance)


def test_only_close_races_are_fully_reranked(
    tmp_path: Any, encoder: Any, settings_factory: Any, untrained_reranker: Any
) -> None:
    """With ``rerank_gap``, a query whose fused first entry leads clearly is scored on that
    entry alone (its relevance still decides); a close one gets all ``rerank_top`` scored."""
    from verticals.support_bot.pipeline import SupportBot, load_sample
    from verticals.support_bot.policy import Policy, decide

    settings = settings_factory(tmp_path, rerank_top=4, rerank_gap=0.0)
    bot = SupportBot(settings, encoder=encoder, persist=False, reranker=untrained_reranker)
    bot.create_tenant("demo")
    load_sample(bot, "demo", settings.sample_dir)
    found = bot.retrieve("demo", "can I pay later with an invoice?")
    assert found[0].relevance is not None
    assert all(c.relevance is None for c in found[1:])  # a lead of any size is clear at gap 0
    everything = bot.retrieve("demo", "can I pay later with an invoice?", rerank=False)
    bot.retriever.rerank(["can I pay later with an invoice?"], [everything], everything=True)
    assert all(c.relevance is not None for c in everything[:4])
    # an unscored rival (cosine 0.9, no relevance) never makes a clear first one ask back
    found[1].cosine = 0.9
    found[0].relevance = 0.6
    assert decide(found, Policy(0.5, 0.1, 0.02, False)) == "answer"
