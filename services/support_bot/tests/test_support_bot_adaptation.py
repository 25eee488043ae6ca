"""Per-tenant adaptation from the knowledge base alone (``verticals.support_bot.adaptation``):
real MiniLM training and a real registry, no mocks. (No test asserts learning: measured on the
Python, Debian and Savvly FAQs the adapted encoder did not beat the current one, see the module.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _sample_answers() -> list[str]:
    rows = (ROOT / "shared" / "support_bot" / "faq.jsonl").read_text().splitlines()
    return [json.loads(r)["answer"] for r in rows if r.strip()]


def test_pseudo_queries_are_cut_out_of_their_entries() -> None:
    from verticals.support_bot.adaptation import pseudo_queries

    texts = _sample_answers()[:10]
    pseudo = pseudo_queries(texts, per_entry=2)
    assert pseudo and len(pseudo) <= 20
    for p in pseudo:
        assert p.query in texts[p.source]
        assert p.query not in p.passage or p.passage == texts[p.source]


def test_an_adaptation_that_does_not_improve_is_not_promoted(tmp_path: Path) -> None:
    from verticals.core.inference import Encoder
    from verticals.core.registry import ModelRegistry
    from verticals.support_bot.adaptation import adapt

    registry = ModelRegistry(tmp_path / "registry")
    base = Encoder.from_base(form="torch")
    texts = _sample_answers()[:30]
    # a learning rate of zero leaves the student the current encoder: no better, not promoted
    result = adapt(texts, "support-encoder-t", base, base, registry, per_entry=1, learning_rate=0.0)
    assert result["candidate"]["mrr"] == pytest.approx(result["current"]["mrr"], abs=1e-6)
    assert not result["promoted"]
    assert registry.current_version("support-encoder-t") is None
    card = registry.card("support-encoder-t", result["version"])
    assert card["gate"]["promoted"] is False
