"""Helpers for tests and benchmarks of the monitor against a real broker (no fakes)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verticals.news_monitor.alerts import RulesConfig
from verticals.news_monitor.settings import NewsSettings


def make_settings(bootstrap: str, tag: str, data_dir: Path, **overrides: Any) -> NewsSettings:
    """Settings with topics and a group of the test's own: named from ``tag`` and ``data_dir``,
    so a rerun of a test (a new ``tmp_path``) never reads what its first try left behind."""
    prefix = "t" + hashlib.sha1(f"{tag}|{data_dir}".encode()).hexdigest()[:8]
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "input_topic": f"{prefix}.raw",
        "output_topic": f"{prefix}.enriched",
        "dlq_topic": f"{prefix}.dlq",
        "alerts_topic": f"{prefix}.alerts",
        "group_id": f"{prefix}-group",
        "data_dir": data_dir,
        "partitions": 3,
        "max_batch": 16,
        "poll_timeout_ms": 100,
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
        # also the rebalance timeout: a killed member is dropped from a rebalance after it
        "max_poll_interval_ms": 10_000,
        "request_timeout_ms": 10_000,
        "lag_interval_s": 0.3,
        "webhook_backoff_s": 0.1,
        "webhook_timeout_s": 1.0,
        **overrides,
    }
    return NewsSettings(**values)


def news(n: int, prefix: str = "n", **fields: Any) -> list[bytes]:
    """``n`` valid news items as published bytes."""
    titles = [
        "Atlas Freight beats estimates as quarterly profit jumps",
        "Euro zone inflation steady in latest reading",
        "Regulators fine Mariner Insurance over compliance failures",
        "Bitcoin slides as exchange halts withdrawals",
    ]
    return [
        json.dumps(
            {
                "id": f"{prefix}-{i}",
                "published_at": f"2026-03-02T09:{i // 60 % 60:02d}:{i % 60:02d}Z",
                "source": "test",
                "title": titles[i % len(titles)],
                "tickers": [["ATF"], [], ["MRIN"], []][i % 4],
                **fields,
            }
        ).encode()
        for i in range(n)
    ]


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    every: float = 0.2,
    info: Callable[[], Any] | None = None,
) -> Any:
    """Poll ``condition`` until truthy; on timeout the error shows ``info()`` (e.g. status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout:.0f}s; {info() if info else ''}")


def key_trace(engine: Any, key: str) -> dict[str, Any]:
    """What the alert engine holds for one key: its buckets (total, negative) and rule states,
    for the message of a failed wait."""
    cells = engine.buckets.get(key, {})
    return {
        "late": engine.late,
        "sources": engine.source_max,
        "buckets": {b: (c.total, c.negative) for b, c in sorted(cells.items())},
        "states": {r: vars(s) for (r, k), s in engine.states.items() if k == key},
    }


def topic_values(settings: NewsSettings, topic: str, timeout: float = 1.0) -> list[Any]:
    from verticals.news_monitor.feed import read_topic

    return list(read_topic(settings, topic, timeout))


def output_ids(settings: NewsSettings) -> list[str]:
    return [json.loads(m.value)["id"] for m in topic_values(settings, settings.output_topic)]


class TopicReader:
    """Reads a topic from the start and keeps what it has read (no group, no commits)."""

    def __init__(self, settings: NewsSettings, topic: str) -> None:
        from kafka import KafkaConsumer

        self.messages: list[Any] = []
        self._consumer = KafkaConsumer(
            topic,
            bootstrap_servers=settings.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **settings.kafka_security(),
        )

    def poll(self, timeout_ms: int = 200) -> list[Any]:
        for batch in self._consumer.poll(timeout_ms=timeout_ms).values():
            self.messages.extend(batch)
        return self.messages

    def ids(self) -> set[str]:
        return {json.loads(m.value)["id"] for m in self.poll()}

    def close(self) -> None:
        self._consumer.close()


SMALL_RULES = RulesConfig.model_validate(
    {
        "bucket_seconds": 60,
        "allowed_lateness_seconds": 0,
        "rules": [
            {
                "name": "share",
                "scopes": ["topic", "ticker"],
                "window_seconds": 300,
                "min_volume": 6,
                "min_negative": 8,
                "min_share": 0.5,
                "z_threshold": 3.0,
                "prior_mean": 0.3,
                "prior_std": 0.1,
                "min_std": 0.08,
                "cooldown_seconds": 1200,
                "ewma_alpha": 0.1,
            }
        ],
    }
)
"""One share rule over 5-minute windows with a small minimum volume: spikes in a few dozen items."""


def classify_into_store(
    store: Any, model: Any, rules: RulesConfig, lines: list[bytes]
) -> list[Any]:
    """The monitor's batch path without Kafka: decode, classify, alert engine, one stored
    transaction. Returns the alerts raised (tests that need a filled store and no broker)."""
    from verticals.news_monitor.alerts import AlertEngine
    from verticals.news_monitor.pipeline import Rejected, classify, decode

    items = [i for i in (decode(line) for line in lines) if not isinstance(i, Rejected)]
    records, observations = classify(items, model)
    engine = AlertEngine(rules, store.load_engine_state())
    alerts = engine.process(observations)
    labelled = [
        (o, r["topic"]["label"], r["sentiment"]["label"])
        for o, r in zip(observations, records, strict=True)
    ]
    store.save_batch(labelled, engine.export_state(), alerts)
    return alerts


@dataclass(frozen=True)
class DemoNews:
    """A store filled from the demo feed (scripted HLVB spike) by the shipped default model."""

    settings: NewsSettings
    store: Any
    alerts: list[Any]
    add: Callable[[list[bytes]], list[Any]]
    """Classify more published lines into the same store; returns the alerts they raise."""


def demo_news(root: Path) -> DemoNews:
    """The monitor's data under ``root`` without a broker: its API can serve it with
    ``build_app(demo.settings, consume=False)``."""
    from verticals.core.registry import ModelRegistry
    from verticals.news_monitor.feed import read_lines
    from verticals.news_monitor.pipeline import load_model
    from verticals.news_monitor.settings import shared_dir
    from verticals.news_monitor.store import Store

    settings = NewsSettings(data_dir=root)
    model = load_model(settings, ModelRegistry(root / "registry"))
    store = Store(settings.sqlalchemy_url("news_monitor"))
    rules = RulesConfig.from_yaml(settings.rules_path)

    def add(lines: list[bytes]) -> list[Any]:
        return classify_into_store(store, model, rules, lines)

    alerts = add(read_lines(shared_dir() / "demo_headlines.jsonl"))
    return DemoNews(settings, store, alerts, add)
