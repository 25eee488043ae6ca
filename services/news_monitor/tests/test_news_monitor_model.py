"""Message validation and the shipped default model (real model, no mocks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from verticals.news_monitor.pipeline import Rejected, classify, decode, load_model
from verticals.news_monitor.schemas import NewsItem
from verticals.news_monitor.settings import NewsSettings, shared_dir


def test_decode_accepts_valid_items_and_names_the_problem_otherwise() -> None:
    item = decode(
        json.dumps(
            {
                "id": "1",
                "published_at": "2026-03-02T10:00:00",
                "source": "wire",
                "title": "  Halvorsen Bank fined  ",
                "tickers": ["hlvb"],
                "extra": "ignored",
            }
        ).encode()
    )
    assert isinstance(item, NewsItem)
    assert item.title == "Halvorsen Bank fined" and item.tickers == ["HLVB"]
    assert item.published_at.tzinfo is not None  # naive times are read as UTC
    cases = {
        b"\xff\xfe": "undecodable",
        b"{oops": "invalid_json",
        b"42": "invalid_item",
        b'{"id": "1", "published_at": "2026-03-02T10:00:00Z", "source": "s"}': "invalid_item",
        b'{"id": "1", "published_at": "2026-03-02T10:00:00Z", "source": "s", "title": "t",'
        b' "tickers": ["NOT A TICKER"]}': "invalid_item",
    }
    for raw, error in cases.items():
        result = decode(raw)
        assert isinstance(result, Rejected) and result.error == error, raw
        assert result.reason
    missing = decode(b'{"id": "1", "published_at": "x", "source": "s"}')
    assert isinstance(missing, Rejected)
    assert "title" in missing.reason and "published_at" in missing.reason


def test_classify_one_pass_gives_both_heads(model: Any) -> None:
    items = [
        NewsItem(
            id="a",
            published_at="2026-03-02T10:00:00Z",
            source="s",
            title="Halvorsen Bank shares plunge as regulators open fraud probe",
            tickers=["HLVB"],
        ),
        NewsItem(
            id="b",
            published_at="2026-03-02T10:01:00Z",
            source="s",
            title="The Federal Reserve cuts rates, lifting hopes for growth",
        ),
    ]
    records, observations = classify(items, model)
    assert [r["id"] for r in records] == ["a", "b"]
    assert records[0]["sentiment"]["label"] == "negative"
    assert records[0]["topic"]["label"] == "regulation_legal"
    assert records[1]["topic"]["label"] == "rates_central_banks"
    assert records[1]["sentiment"]["label"] == "positive"
    assert observations[0].keys == ("topic:regulation_legal", "ticker:HLVB")
    assert observations[0].negative and not observations[1].negative
    # the batch-wide rounding gives what rounding each probability on its own gives
    probs = model.predict_proba([i.title for i in items])
    for row, record in enumerate(records):
        for head in ("sentiment", "topic"):
            labels = next(h.labels for h in model.heads if h.name == head)
            values = probs[head][row]
            expected = {lab: round(float(p), 4) for lab, p in zip(labels, values, strict=True)}
            assert record[head]["probabilities"] == expected
            assert record[head]["score"] == max(expected.values())
            assert json.dumps(expected) == json.dumps(record[head]["probabilities"])
        sentiments = list(next(h.labels for h in model.heads if h.name == "sentiment"))
        p_negative = float(probs["sentiment"][row][sentiments.index("negative")])
        assert observations[row].negative_probability == pytest.approx(p_negative, abs=1e-6)


def test_default_model_quality_on_held_out_wording(model: Any) -> None:
    """The demo's background headlines use templates the model never saw in training. Generated
    text is a demo check only: quality on real news is asserted in test_news_monitor_real.py."""
    from sklearn.metrics import f1_score

    rows = [json.loads(x) for x in (shared_dir() / "demo_eval.jsonl").read_text().splitlines()]
    preds = model.predict([r["text"] for r in rows])
    # measured 0.67 and 0.82 (the previous template-trained model: 0.83 and 0.85)
    for head, floor in (("topic", 0.6), ("sentiment", 0.75)):
        f1 = f1_score([r[head] for r in rows], [p[head]["label"] for p in preds], average="macro")
        assert f1 >= floor, (head, f1)
    card = json.loads((shared_dir() / "model" / "card.json").read_text())
    assert card["task"] == "news-sentiment-topic" and card["method"] == "lora"
    assert not (shared_dir() / "model" / "encoder").exists()  # never a copy of the base model


def test_a_poll_is_classified_in_passes_of_model_batch(tmp_path: Path) -> None:
    """The poll size (max_batch) and the forward pass (model_batch) are separate settings."""
    from verticals.core.registry import ModelRegistry

    settings = NewsSettings(max_batch=20, model_batch=8, model_form="fp32", data_dir=tmp_path)
    model = load_model(settings, ModelRegistry(tmp_path / "registry"))
    passes: list[int] = []
    model.predict_proba([f"Headline number {i}" for i in range(20)], on_batch=passes.append)
    assert passes == [8, 8, 4]
