"""The monitor on the real embedded broker: DLQ, crash and restart, broker restart, webhooks down,
two consumers in one group, and the demo feed's scripted alert end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from verticals.news_monitor.api import build_monitor
from verticals.news_monitor.broker import NoidaBroker
from verticals.news_monitor.consumer import ensure_topics
from verticals.news_monitor.feed import produce, read_lines, refresh
from verticals.news_monitor.settings import NewsSettings, shared_dir
from verticals.news_monitor.testing import (
    TopicReader,
    make_settings,
    news,
    output_ids,
    topic_values,
    wait_for,
)
from verticals.serving.testing import bound_socket


def start_monitor(settings: NewsSettings, model: Any, **kwargs: Any) -> Any:
    ensure_topics(settings)
    monitor = build_monitor(settings, model, **kwargs)
    monitor.start()
    return monitor


def test_malformed_messages_go_to_the_dlq_with_reasons(settings: NewsSettings, model: Any) -> None:
    ensure_topics(settings)
    bad = [
        b"\xff\xfe not utf-8",
        b"{not json",
        b'["a", "list"]',
        json.dumps({"id": "x1", "source": "s", "title": "No date"}).encode(),
    ]
    good = news(12)
    produce(settings, good[:6] + bad + good[6:])
    monitor = start_monitor(settings, model)
    try:
        wait_for(lambda: len(set(output_ids(settings))) >= 12, 60)
        dead = wait_for(lambda: topic_values(settings, settings.dlq_topic), 20)
    finally:
        monitor.stop()
    assert len(dead) == 4
    headers = [{k: v.decode() for k, v in m.headers} for m in dead]
    assert sorted(h["error"] for h in headers) == [
        "invalid_item",
        "invalid_item",
        "invalid_json",
        "undecodable",
    ]
    for msg, h in zip(dead, headers, strict=True):
        assert h["source_topic"] == settings.input_topic
        assert int(h["source_partition"]) in (0, 1, 2) and int(h["source_offset"]) >= 0
        assert h["error_reason"]
        assert msg.value in bad  # the original bytes, untouched
    assert any("published_at" in h["error_reason"] for h in headers)
    record = json.loads(topic_values(settings, settings.output_topic)[0].value)
    assert record["sentiment"]["label"] in ("negative", "neutral", "positive")
    assert abs(sum(record["topic"]["probabilities"].values()) - 1) < 1e-3
    assert monitor.metrics.dead_lettered.labels("invalid_item")._value.get() == 2


def test_killed_consumer_restarts_without_losing_inputs(
    broker: NoidaBroker, model: Any, registry_dir: Path, tmp_path: Path, request: Any
) -> None:
    # the restarted process reuses its static group member id (as a StatefulSet pod would);
    # noida-db 0.2.3 never drops a SIGKILLed dynamic member, which would block the group
    settings = make_settings(
        broker.bootstrap, request.node.nodeid, tmp_path, group_instance_id="worker-1"
    )
    ensure_topics(settings)
    inputs = news(600, prefix="k")
    produce(settings, inputs[:100])  # the rest after the kill: it lands mid-stream by design
    names = (
        "bootstrap_servers",
        "input_topic",
        "output_topic",
        "dlq_topic",
        "alerts_topic",
        "group_id",
        "data_dir",
        "session_timeout_ms",
        "heartbeat_interval_ms",
        "max_poll_interval_ms",
        "group_instance_id",
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VERTICALS_REGISTRY_DIR": str(registry_dir),
        **{f"VERTICALS_NEWS_{k.upper()}": str(getattr(settings, k)) for k in names},
        "VERTICALS_NEWS_MAX_BATCH": "4",
    }
    code = "from verticals.news_monitor.cli import app; app()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "consumer.log").open("wb"),
    )
    reader = TopicReader(settings, settings.output_topic)
    try:
        wait_for(lambda: len(reader.poll(100)) >= 20, 120, every=0.01)
    finally:
        process.send_signal(signal.SIGKILL)  # a crash: no clean shutdown, no final commit
        process.wait()
    before = reader.ids()
    assert 20 <= len(before) <= 100
    produce(settings, inputs[100:])
    monitor = start_monitor(settings, model)
    try:
        wanted = {json.loads(x)["id"] for x in inputs}
        wait_for(
            lambda: wanted <= reader.ids(),
            120,
            every=0.2,
            info=lambda: (
                len(reader.ids()),
                monitor.status,
                monitor.metrics.messages_out._value.get(),
            ),
        )
    finally:
        monitor.stop()
        reader.close()


def test_consumer_reconnects_after_a_broker_restart(
    model: Any, tmp_path: Path, request: Any
) -> None:
    broker = NoidaBroker(tmp_path / "broker")  # a port of its own, kept across the restart
    broker.start()
    settings = make_settings(broker.bootstrap, request.node.nodeid, tmp_path)
    monitor = start_monitor(settings, model)
    try:
        produce(settings, news(10, prefix="a"))
        wait_for(lambda: len(set(output_ids(settings))) >= 10, 60)
        broker.stop()  # clean stop: the broker saves its log
        broker.start()
        produce(settings, news(10, prefix="b"))
        wanted = {f"{p}-{i}" for p in "ab" for i in range(10)}
        wait_for(lambda: wanted <= set(output_ids(settings)), 90, every=0.5)
        assert monitor.status["running"]
    finally:
        monitor.stop()
        broker.stop()


def demo_lines() -> list[bytes]:
    return refresh(read_lines(shared_dir() / "demo_headlines.jsonl"))


def test_demo_spike_alerts_even_when_the_webhook_is_down(
    broker: NoidaBroker, model: Any, tmp_path: Path, request: Any
) -> None:
    closed = bound_socket()  # held, never listening: connections to it are refused
    dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
    request.addfinalizer(closed.close)
    settings = make_settings(
        broker.bootstrap,
        request.node.nodeid,
        tmp_path,
        max_batch=64,
        webhook_urls=[dead_url],
        webhook_max_attempts=3,
    )
    monitor = start_monitor(settings, model)
    try:
        produce(settings, demo_lines())
        alerts = wait_for(
            lambda: topic_values(settings, settings.alerts_topic),
            90,
            every=0.5,
            info=lambda: (monitor.status, monitor.metrics.messages_out._value.get()),
        )
        keys = {json.loads(m.value)["key"] for m in alerts}
        assert "ticker:HLVB" in keys
        payload = next(json.loads(m.value) for m in alerts if b"ticker:HLVB" in m.value)
        assert payload["negative"] >= 5 and payload["score"] >= 3
        assert payload["evidence"] and all(e["id"] for e in payload["evidence"])
        wait_for(lambda: monitor.metrics.webhook.labels("failed")._value.get() >= 2, 20)
        stored = monitor.store.alerts(key="ticker:HLVB")
        assert stored[0]["published"] and not stored[0]["webhook_delivered"]
        wait_for(lambda: monitor.store.alerts(key="ticker:HLVB")[0]["webhook_attempts"] >= 2, 20)
        wait_for(lambda: len(set(output_ids(settings))) >= 510, 60)
        # every batch flushed (its alerts included): the alerts topic is complete
        wait_for(lambda: monitor.metrics.messages_out._value.get() >= 510, 60)
        counted = len(topic_values(settings, settings.alerts_topic))
        assert counted >= len(alerts)
    finally:
        monitor.stop()
    # a redelivery of everything (a new group re-reads the topic) raises no second alert
    again = make_settings(
        broker.bootstrap, request.node.nodeid, tmp_path, group_id="replay", max_batch=64
    )
    replay = start_monitor(again, model, store=monitor.store)
    try:
        wait_for(lambda: replay.metrics.duplicates._value.get() >= 510, 90, every=0.5)
    finally:
        replay.stop()
    assert len(topic_values(settings, settings.alerts_topic)) == counted
    assert len(monitor.store.alerts(limit=500)) == counted


def test_two_consumers_in_one_group_share_the_partitions(
    settings: NewsSettings, model: Any
) -> None:
    ensure_topics(settings)
    first = start_monitor(settings, model, client_id="c1")
    second = start_monitor(settings, model, client_id="c2")
    try:
        # the group settles first (on a loaded machine the second join can take a while),
        # so that the one consumer does not read everything before the other is assigned
        wait_for(lambda: first.status["assigned"] and second.status["assigned"], 60)
        a, b = set(first.status["assigned"]), set(second.status["assigned"])
        assert a | b == {0, 1, 2} and not a & b
        produce(settings, news(90, prefix="g"))
        wait_for(lambda: len(set(output_ids(settings))) >= 90, 90, every=0.5)
        assert first.metrics.messages_in._value.get() > 0
        assert second.metrics.messages_in._value.get() > 0
    finally:
        first.stop()
        second.stop()
