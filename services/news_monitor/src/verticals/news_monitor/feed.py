"""Publishing JSONL files to the input topic (replays and demos), and reading topics back."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from verticals.news_monitor.settings import NewsSettings


def read_lines(path: Path) -> list[bytes]:
    """Non-empty lines as raw bytes: malformed ones are published too (they test the DLQ)."""
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def refresh(lines: list[bytes], now: datetime | None = None) -> list[bytes]:
    """Shift valid items so the newest is ``now`` and give them run-unique ids (replays of a
    demo file would otherwise be recognised as duplicates and raise no new alert)."""
    now = now or datetime.now(UTC)
    suffix = uuid.uuid4().hex[:6]
    parsed: list[dict[str, Any] | None] = []
    newest: datetime | None = None
    for line in lines:
        try:
            item = json.loads(line)
            when = datetime.fromisoformat(str(item["published_at"]).replace("Z", "+00:00"))
            item["_when"] = when if when.tzinfo else when.replace(tzinfo=UTC)
            newest = max(newest or item["_when"], item["_when"])
            parsed.append(item)
        except (ValueError, KeyError, TypeError, AttributeError):
            parsed.append(None)
    shift = now - newest if newest else None
    out = []
    for line, item in zip(lines, parsed, strict=True):
        if item is None or shift is None:
            out.append(line)
            continue
        when = item.pop("_when") + shift
        item["published_at"] = when.isoformat()
        item["id"] = f"{item.get('id')}-{suffix}"
        out.append(json.dumps(item).encode())
    return out


def key_of(line: bytes) -> bytes | None:
    """Partition by first ticker (keeps a company's items in order), else by id."""
    try:
        item = json.loads(line)
        tickers = item.get("tickers") or []
        return str(tickers[0] if tickers else item.get("id")).encode()
    except (ValueError, AttributeError, TypeError):
        return None


def produce(
    settings: NewsSettings,
    lines: list[bytes],
    rate: float | None = None,
    topic: str | None = None,
    producer: Any = None,
) -> int:
    """Publish ``lines``; ``rate`` paces them (messages per second). Returns the count sent."""
    from verticals.news_monitor.consumer import make_producer

    own = producer is None
    producer = producer or make_producer(settings)
    start = time.perf_counter()
    try:
        for i, line in enumerate(lines):
            if rate:
                wait = start + i / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            producer.send(topic or settings.input_topic, key=key_of(line), value=line)
        producer.flush()
    finally:
        if own:
            producer.close()
    return len(lines)


def read_topic(
    settings: NewsSettings, topic: str, timeout_s: float = 5.0, max_messages: int | None = None
) -> Iterator[Any]:
    """Every message of ``topic`` from the start (no group), until idle for ``timeout_s``."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout_s * 1000),
        **settings.kafka_security(),
    )
    try:
        for n, msg in enumerate(consumer, start=1):
            yield msg
            if max_messages and n >= max_messages:
                break
    finally:
        consumer.close()
