"""Regression tests for issue 15 on the real embedded broker: time is bounded (far-future items
are dead-lettered and never move the watermark; a stored far-future watermark is clamped on
start) and a dead letter always fits (a near-1 MB invalid item does not block its partition)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from verticals.news_monitor.alerts import AlertEngine, Observation
from verticals.news_monitor.api import build_monitor
from verticals.news_monitor.consumer import (
    DLQ_FALLBACK_BYTES,
    NewsMonitor,
    ensure_topics,
    make_producer,
)
from verticals.news_monitor.feed import produce, read_lines, refresh
from verticals.news_monitor.settings import NewsSettings, shared_dir
from verticals.news_monitor.store import Store
from verticals.news_monitor.testing import (
    SMALL_RULES,
    TopicReader,
    key_trace,
    make_settings,
    news,
    output_ids,
    topic_values,
    wait_for,
)

FAR_FUTURE = "9999-12-31T00:00:00Z"


def _far_future_item(i: int) -> bytes:
    return json.dumps(
        {
            "id": f"future-{i}",
            "published_at": FAR_FUTURE,
            "source": "prober",
            "title": f"Markets crash everywhere {i}",
            "tickers": ["HLVB"],
        }
    ).encode()


def test_far_future_items_are_dead_lettered_and_a_spike_still_alerts(
    broker: Any, model: Any, tmp_path: Path, request: Any
) -> None:
    settings = make_settings(broker.bootstrap, request.node.nodeid, tmp_path, max_batch=64)
    ensure_topics(settings)
    producer = make_producer(settings)
    for partition in range(3):  # one per partition: each partition's watermark would move
        producer.send(settings.input_topic, value=_far_future_item(partition), partition=partition)
    producer.flush()
    producer.close()
    monitor = build_monitor(settings, model)
    monitor.start()
    try:
        wait_for(lambda: monitor.metrics.messages_in._value.get() >= 3, 60)
        produce(settings, refresh(read_lines(shared_dir() / "demo_headlines.jsonl")))
        alerts = wait_for(
            lambda: [
                a for a in topic_values(settings, settings.alerts_topic) if b"HLVB" in a.value
            ],
            90,
            every=0.5,
            info=lambda: (
                monitor.status,
                monitor.engine.watermark,
                key_trace(monitor.engine, "ticker:HLVB"),
            ),
        )
        assert alerts
        assert monitor.engine.watermark is not None
        assert monitor.engine.watermark <= time.time() + settings.max_event_skew_s
    finally:
        monitor.stop()
    dead = topic_values(settings, settings.dlq_topic)
    headers = [{k: v.decode() for k, v in m.headers} for m in dead]
    future = [h for h in headers if h["error"] == "future_timestamp"]  # the demo has bad lines too
    assert len(future) == 3
    assert all("ahead of the receive time" in h["error_reason"] for h in future)
    assert not {f"future-{i}" for i in range(3)} & set(output_ids(settings))


def _obs(i: int, ts: float, negative: bool, source: str) -> Observation:
    return Observation(
        f"o{i}", ts, ("topic:markets",), negative, 0.9 if negative else 0.1, f"headline {i}", source
    )


def test_a_stored_far_future_watermark_is_clamped_on_start(tmp_path: Path, model: Any) -> None:
    """The state an older version stored after three year-9999 items (one per partition):
    a start clamps it, and a later spike raises an alert again."""
    settings = NewsSettings(data_dir=tmp_path, bootstrap_servers="127.0.0.1:1")
    store = Store(settings.sqlalchemy_url("news_monitor"))
    sources = [f"raw/{p}" for p in range(3)]
    base = time.time() - 4 * 3600
    old = AlertEngine(SMALL_RULES)
    calm = [
        _obs(i, base + i * 20, i % 5 == 0, sources[i % 3]) for i in range(360)
    ]  # two hours, 20 % negative
    far = [_obs(1000 + p, 253402214400.0, False, sources[p]) for p in range(3)]
    batch = calm + far
    alerts = old.process(batch)
    assert not alerts and old.watermark == 253402214400.0  # what the old version stored
    store.save_batch([(o, "markets", "neutral") for o in batch], old.export_state(), alerts)

    monitor = NewsMonitor(settings, model, store, SMALL_RULES)  # a start
    engine = monitor.engine
    assert engine.watermark is not None and engine.watermark <= time.time()
    start = base + 360 * 20
    spike = [_obs(2000 + i, start + i * 10, True, sources[i % 3]) for i in range(60)]
    after = [_obs(3000 + i, start + 900 + i * 20, i % 5 == 0, sources[i % 3]) for i in range(30)]
    fired = engine.process(spike + after)
    assert any(a.key == "topic:markets" for a in fired)


@pytest.mark.parametrize("dlq_max_bytes", [None, 2_000_000])
def test_a_near_1mb_invalid_item_is_dead_lettered_truncated(
    broker: Any, model: Any, tmp_path: Path, request: Any, dlq_max_bytes: int | None
) -> None:
    """Cut to ``dlq_max_bytes``; with a limit set above what the producer sends (2 MB), the
    producer's refusal makes the dead letter go out cut to 16 KB instead."""
    extra = {"dlq_max_bytes": dlq_max_bytes} if dlq_max_bytes else {}
    settings = make_settings(broker.bootstrap, request.node.nodeid, tmp_path, **extra)
    ensure_topics(settings)
    huge = b'{"id": "big", "title": "' + b"x" * (1_048_576 - 300)  # invalid JSON, ~1 MB
    producer = make_producer(settings, max_request_size=2_000_000)
    producer.send(settings.input_topic, value=huge, partition=0).get(timeout=30)
    for line in news(6, prefix="behind"):  # behind the poison record, same partition
        producer.send(settings.input_topic, value=line, partition=0)
    producer.flush()
    producer.close()
    monitor = build_monitor(settings, model)
    monitor.start()
    try:
        wait_for(
            lambda: {f"behind-{i}" for i in range(6)} <= set(output_ids(settings)),
            60,
            info=lambda: monitor.status,
        )
    finally:
        monitor.stop()
    reader = TopicReader(settings, settings.dlq_topic)
    try:
        dead = wait_for(reader.poll, 20)
    finally:
        reader.close()
    assert len(dead) == 1
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["error"] == "invalid_json" and headers["truncated"] == "true"
    assert int(headers["original_size"]) == len(huge)
    assert len(dead[0].value) < len(huge) and huge.startswith(dead[0].value)
    if dlq_max_bytes is None:
        assert len(dead[0].value) > 900_000  # as much as fits, not an empty placeholder
    else:
        assert 15_000 < len(dead[0].value) <= DLQ_FALLBACK_BYTES
