"""An uncalibrated tenant's threshold comes from its own knowledge base (pseudo-queries made
from its entries), not from a fixed number, and no labelled question is needed for it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np


def test_pseudo_query_is_the_entrys_first_sentence() -> None:
    from verticals.support_bot.policy import pseudo_query
    from verticals.support_bot.text import EntryIn

    faq = EntryIn(id="f", title="Returns?", body="Send it back within 30 days. We pay postage.")
    assert pseudo_query(faq) == "Send it back within 30 days."
    passage = EntryIn(
        id="d#1",
        title="d",
        body="Refunds reach your card in five days. After that, call us.",
        kind="passage",
        source="d",
    )
    assert pseudo_query(passage) == "Refunds reach your card in five days."
    assert pseudo_query(EntryIn(id="s", title="Hi", body="x")) is None  # too short to ask


def test_new_tenant_threshold_is_derived_from_its_knowledge(
    tmp_path: Any, encoder: Any, settings_factory: Any
) -> None:
    from verticals.support_bot.pipeline import SupportBot, load_sample, read_questions
    from verticals.support_bot.policy import threshold_from_scores
    from verticals.support_bot.text import EntryIn

    settings = settings_factory(tmp_path)
    bot = SupportBot(settings, encoder=encoder, persist=False, reranker=False)
    bot.create_tenant("shop")
    load_sample(bot, "shop", settings.sample_dir)
    policy = bot.policy("shop")
    wrong = bot.thresholds.scores("shop")
    assert len(wrong) == settings.pseudo_queries and not policy.calibrated
    assert policy.threshold == round(threshold_from_scores(wrong, settings.pseudo_quantile), 4)
    assert policy.threshold != settings.handoff_threshold

    # the sample questions' out-of-scope ones (never seen by the rule) are handed off at
    # least as often as under the fixed default
    questions = read_questions(settings.sample_dir / "questions.jsonl")
    fixed = bot.evaluate("shop", questions, policy=replace(policy, threshold=0.3))
    derived = bot.evaluate("shop", questions)
    assert derived["threshold"] == policy.threshold
    assert derived["handoff_recall"] >= fixed["handoff_recall"], (derived, fixed)

    # recomputed when the knowledge base changes; the fixed default when switched off or tiny
    bot.upsert("shop", [EntryIn(id="new", title="Do you sell gift cards?", body="Yes, online.")])
    bot.policy("shop")
    assert bot.thresholds._cache["shop"][0][1] == len(bot.index("shop"))
    off = SupportBot(
        settings.model_copy(update={"knowledge_threshold": False}),
        encoder=encoder,
        persist=False,
        store=bot.store,
        reranker=False,
    )
    assert off.policy("shop").threshold == settings.handoff_threshold
    bot.create_tenant("tiny")
    bot.upsert("tiny", [EntryIn(id="a", title="What are your hours?", body="9 to 5.")])
    assert bot.policy("tiny").threshold == settings.handoff_threshold
    assert np.isfinite(policy.threshold)
