"""Writes the demo feed (generated for this project, seeded): four hours of background news
from the held-out headline templates, a scripted negative spike on Halvorsen Bank (HLVB,
regulation/legal) from 10:30 to 10:50 UTC, a few malformed messages for the dead-letter topic,
and the gold labels of the background items (for the unseen-wording evaluation).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from verticals.news_monitor.headlines import COMPANIES, HELD_OUT, TEMPLATES, fill

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HOURS = 4
BACKGROUND = 480
SPIKE_AT = START + timedelta(hours=2, minutes=30)
SPIKE_MINUTES = 20
SOURCES = ["Newswire", "MarketDesk", "FinDaily", "Ledger Times", "Bourse Bulletin"]
SPIKE_COMPANY = ("Halvorsen Bank", "HLVB")
SPIKE_HEADLINES = [
    "Halvorsen Bank shares plunge as regulators open money-laundering probe",
    "Prosecutors search Halvorsen Bank headquarters over suspicious transfers",
    "Halvorsen Bank faces record fine over anti-money-laundering failures",
    "Halvorsen Bank suspends two senior compliance officers amid probe",
    "Ratings agency puts Halvorsen Bank on negative watch after raid",
    "Halvorsen Bank stock suffers worst day in a decade as investigation widens",
    "US authorities subpoena Halvorsen Bank records in laundering case",
    "Halvorsen Bank customers pull deposits as scandal deepens",
    "Whistleblower says Halvorsen Bank ignored repeated warnings",
    "Halvorsen Bank faces shareholder lawsuit over compliance failures",
    "Regulators weigh stripping Halvorsen Bank of its trading licence",
    "Halvorsen Bank bonds slump as lawsuit risk mounts",
    "Halvorsen Bank chairman under pressure as laundering probe expands",
    "European watchdog joins investigation into Halvorsen Bank",
    "Halvorsen Bank admits control failures, shares extend losses",
]
MALFORMED = [
    b'{"id": "demo-bad-1", "published_at": "2026-03-02T09:00:00Z", "source": "Newswire"}',
    b'{"id": "demo-bad-2", "title": "Unterminated JSON',
    b'{"id": "demo-bad-3", "published_at": "yesterday", "source": "x", "title": "Bad date"}',
]


def build(seed: int = 11) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    rng = random.Random(seed)
    cells = [
        (template, topic, sentiment)
        for topic, by_sentiment in TEMPLATES.items()
        for sentiment, items in by_sentiment.items()
        for template in items[-HELD_OUT:]
    ]
    weights = [{"negative": 0.3, "neutral": 0.4, "positive": 0.3}[s] for _, _, s in cells]
    items: list[dict[str, Any]] = []
    gold: list[dict[str, str]] = []
    step = HOURS * 3600 / BACKGROUND
    for i in range(BACKGROUND):
        template, topic, sentiment = rng.choices(cells, weights)[0]
        company = SPIKE_COMPANY if rng.random() < 0.04 else rng.choice(COMPANIES)
        h = fill(template, topic, sentiment, rng, company)
        when = START + timedelta(seconds=i * step + rng.uniform(0, step * 0.9))
        items.append(_item(f"demo-{i:04d}", when, rng, h.title, h.tickers, h.entities))
        gold.append({"text": h.title, "sentiment": sentiment, "topic": topic})
    for j in range(2 * len(SPIKE_HEADLINES)):
        title = SPIKE_HEADLINES[j % len(SPIKE_HEADLINES)]
        when = SPIKE_AT + timedelta(seconds=rng.uniform(0, SPIKE_MINUTES * 60))
        items.append(_item(f"demo-spike-{j:03d}", when, rng, title, ("HLVB",), ("Halvorsen Bank",)))
    items.sort(key=lambda x: (x["published_at"], x["id"]))
    return items, gold


def _item(
    id_: str, when: datetime, rng: random.Random, title: str, tickers: Any, entities: Any
) -> dict[str, Any]:
    return {
        "id": id_,
        "published_at": when.isoformat().replace("+00:00", "Z"),
        "source": rng.choice(SOURCES),
        "title": title,
        "tickers": list(tickers),
        "entities": list(entities),
        "lang": "en",
    }


def write(folder: Path, seed: int = 11) -> dict[str, Any]:
    items, gold = build(seed)
    lines = [json.dumps(i).encode() for i in items]
    for k, bad in enumerate(MALFORMED):  # spread through the feed
        lines.insert(50 + 150 * k, bad)
    (folder / "demo_headlines.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with (folder / "demo_eval.jsonl").open("w", encoding="utf-8") as handle:
        for row in gold:
            handle.write(json.dumps(row) + "\n")
    return {"items": len(items), "malformed": len(MALFORMED), "eval_rows": len(gold)}
