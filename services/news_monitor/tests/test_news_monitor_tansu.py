"""The same stream behaviour against a second Kafka implementation (tansu), in the slow suite:
nothing may lean on one broker's quirks. tansu: JoinGroup waits session_timeout_ms / 2 and its
end_offsets are wrong, so lag is best effort and the waits are longer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from verticals.news_monitor.api import build_monitor
from verticals.news_monitor.broker import TansuBroker
from verticals.news_monitor.consumer import ensure_topics
from verticals.news_monitor.feed import produce, read_lines, refresh
from verticals.news_monitor.settings import shared_dir
from verticals.news_monitor.testing import (
    key_trace,
    make_settings,
    news,
    output_ids,
    topic_values,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_tansu_dlq_outputs_alerts_and_resume(
    tansu: TansuBroker, model: Any, tmp_path: Path, request: Any
) -> None:
    settings = make_settings(tansu.bootstrap, request.node.nodeid, tmp_path, max_batch=64)
    ensure_topics(settings)
    lines = refresh(read_lines(shared_dir() / "demo_headlines.jsonl"))
    produce(settings, lines[:200])
    monitor = build_monitor(settings, model)
    monitor.start()
    try:
        wait_for(lambda: len(set(output_ids(settings))) >= 199, 120, 0.5)
    finally:
        monitor.stop()  # committed offsets must let a new consumer resume, not restart
    produce(settings, lines[200:])
    monitor = build_monitor(settings, model, store=monitor.store)
    monitor.start()
    try:
        wait_for(lambda: len(set(output_ids(settings))) >= 510, 120, 0.5)
        alerts = wait_for(  # the HLVB alert, not the first alert of any key
            lambda: [
                m
                for m in topic_values(settings, settings.alerts_topic)
                if json.loads(m.value)["key"] == "ticker:HLVB"
            ],
            60,
            0.5,
            info=lambda: (
                monitor.status,
                monitor.engine.watermark,
                key_trace(monitor.engine, "ticker:HLVB"),
            ),
        )
    finally:
        monitor.stop()
    assert alerts
    assert monitor.metrics.messages_in._value.get() <= 313 + 16  # resumed near the commit
    dead = topic_values(settings, settings.dlq_topic)
    assert len(dead) == 3 and all(dict(m.headers)["error"] for m in dead)


def test_tansu_two_consumers_share_partitions(
    tansu: TansuBroker, model: Any, tmp_path: Path, request: Any
) -> None:
    settings = make_settings(tansu.bootstrap, request.node.nodeid, tmp_path)
    ensure_topics(settings)
    first = build_monitor(settings, model, client_id="c1")
    second = build_monitor(settings, model, client_id="c2")
    first.start()
    second.start()
    try:
        produce(settings, news(90, prefix="t"))
        wait_for(lambda: len(set(output_ids(settings))) >= 90, 120, 0.5)
        wait_for(lambda: first.status["assigned"] and second.status["assigned"], 60)
        assert set(first.status["assigned"]) | set(second.status["assigned"]) == {0, 1, 2}
    finally:
        first.stop()
        second.stop()
