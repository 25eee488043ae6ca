"""The stream processor: poll a batch, classify it in one pass, publish, alert, then commit.

Two stages: while one batch is published, stored and flushed on the emit thread, the next is
polled and classified; its offsets are committed by the polling thread once its emit is done.

At-least-once: offsets are committed only after the enriched records, dead letters and alerts
of the batch are flushed to the broker and the batch's window state is stored. A failure in the
middle rewinds the consumer to the batch start and rebuilds the alert engine from the store, so
the batch is redone; redelivered items are recognised by id and raise no second alert.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from verticals.news_monitor.alerts import AlertEngine, Observation, RulesConfig
from verticals.news_monitor.metrics import MonitorMetrics
from verticals.news_monitor.pipeline import Classifier, Rejected, classify, decode
from verticals.news_monitor.settings import NewsSettings
from verticals.news_monitor.sinks import WebhookSink
from verticals.news_monitor.store import Store
from verticals.serving.server import freeze_loaded_objects

log = logging.getLogger("verticals.news_monitor.consumer")

EMIT_LINGER_MS = 200
EMIT_BATCH_BYTES = 512 * 1024
"""The emit stage flushes after every batch, so its records wait for that flush, not for the
linger timer, and a producer batch holds a whole batch's records: each batch leaves as one
produce request per partition. With kafka-python's defaults (5 ms, 16 KB) the sender thread was
woken about 15 times per batch of 64 enriched records."""


DLQ_RECORD_OVERHEAD = 128
"""Bytes a record's framing adds to its key, value and headers (an upper bound)."""
DLQ_MAX_KEY_BYTES = 1024
DLQ_FALLBACK_BYTES = 16_384
"""A dead letter the producer or broker still refuses as too large is resent cut to this."""


@dataclass
class Prepared:
    """A classified batch waiting to be emitted."""

    started: float
    rejected: list[tuple[Any, Rejected]]
    good: list[tuple[Any, Any]]
    records: list[dict[str, Any]]
    observations: list[Observation]


def ensure_topics(settings: NewsSettings, timeout: float = 15.0) -> list[str]:
    """Create the input, output, dead-letter and alerts topics when missing."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        request_timeout_ms=int(timeout * 1000),
        **settings.kafka_security(),
    )
    try:
        existing = set(admin.list_topics())
        wanted = {
            settings.input_topic: settings.partitions,
            settings.output_topic: settings.partitions,
            settings.dlq_topic: 1,
            settings.alerts_topic: 1,
        }
        new = [NewTopic(t, n, 1) for t, n in wanted.items() if t not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
        return [t.name for t in new]
    finally:
        admin.close()


def make_producer(settings: NewsSettings, **overrides: Any) -> Any:
    from kafka import KafkaProducer

    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "acks": "all",
        "linger_ms": 5,
        "retries": 5,
        "retry_backoff_ms": 200,
        "request_timeout_ms": settings.request_timeout_ms,
        "reconnect_backoff_max_ms": 2000,
        **settings.kafka_security(),
    }
    options.update(overrides)
    return KafkaProducer(**options)


def make_consumer(settings: NewsSettings, client_id: str | None = None) -> Any:
    from kafka import KafkaConsumer

    return KafkaConsumer(
        settings.input_topic,
        bootstrap_servers=settings.bootstrap,
        group_id=settings.group_id,
        group_instance_id=settings.group_instance_id,
        client_id=client_id or "news-monitor",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.max_batch,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_poll_interval_ms=settings.max_poll_interval_ms,
        request_timeout_ms=max(settings.request_timeout_ms, settings.session_timeout_ms + 5000),
        reconnect_backoff_max_ms=2000,
        **settings.kafka_security(),
    )


def load_engine(rules: RulesConfig, store: Store, max_event_ts: float | None = None) -> AlertEngine:
    """The alert engine as it was after the last stored batch (state + replayed windows).

    Event times after ``max_event_ts`` (stored by an older version that let far-future items
    in) are clamped out of the state and skipped in the replay, so a start always recovers."""
    engine = AlertEngine(rules, store.load_engine_state())
    if max_event_ts is not None:
        fixed = engine.clamp_future(max_event_ts, store.latest_event_ts(max_event_ts))
        if fixed:
            log.warning("clamped %d far-future marks out of the stored window state", fixed)
    start = engine.retention_start()
    if start is not None:
        for obs in store.observations_since(start):
            if max_event_ts is None or obs.event_ts <= max_event_ts:
                engine.add(obs, update_watermark=False)
    engine.late = 0
    return engine


def dead_letter(
    msg: Any, rejected: Rejected, max_bytes: int
) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """The dead-letter copy of ``msg``: (key, value, headers) with the reason. One that would
    not fit in ``max_bytes`` is cut to fit, with headers ``truncated`` and ``original_size``
    (and ``original_key_size`` for a cut key), so a poison record never blocks its partition."""
    value: bytes = msg.value or b""
    key: bytes | None = msg.key
    headers = [
        ("error", rejected.error.encode()),
        ("error_reason", rejected.reason.encode("utf-8", "replace")[:1000]),
        ("source_topic", msg.topic.encode()),
        ("source_partition", str(msg.partition).encode()),
        ("source_offset", str(msg.offset).encode()),
        ("failed_at", datetime.now(UTC).isoformat().encode()),
        ("original_size", str(len(value)).encode()),
    ]

    def size() -> int:
        extra = sum(len(k) + len(v) + 8 for k, v in headers)
        return len(value) + len(key or b"") + extra + DLQ_RECORD_OVERHEAD

    if size() > max_bytes:
        headers.append(("truncated", b"true"))
        if key is not None and len(key) > DLQ_MAX_KEY_BYTES:
            headers.append(("original_key_size", str(len(key)).encode()))
            key = key[:DLQ_MAX_KEY_BYTES]
        value = value[: max(len(value) - (size() - max_bytes), 0)]
    return key, value, headers


class NewsMonitor:
    def __init__(
        self,
        settings: NewsSettings,
        model: Classifier,
        store: Store,
        rules: RulesConfig,
        metrics: MonitorMetrics | None = None,
        client_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.model = model
        self.store = store
        self.rules = rules
        self.metrics = metrics or MonitorMetrics()
        self.client_id = client_id
        self.sink = WebhookSink(
            settings.webhook_urls,
            self.metrics,
            store.record_webhook,
            settings.webhook_max_attempts,
            settings.webhook_backoff_s,
            settings.webhook_timeout_s,
        )
        self.engine = load_engine(rules, store, self.latest_event_ts())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="news-emit")
        self._inflight: tuple[Sequence[Any], Future[None]] | None = None
        self.consumer: Any = None
        self.producer: Any = None
        self.status: dict[str, Any] = {
            "running": False,
            "batches": 0,
            "last_batch_at": None,
            "assigned": [],
            "lag": {},
            "last_error": None,
        }
        self._last_lag = 0.0

    def latest_event_ts(self) -> float:
        """The latest event time accepted now (the clock plus the allowed skew)."""
        return time.time() + self.settings.max_event_skew_s

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        freeze_loaded_objects()  # the model and the window state, loaded by now
        self._thread = threading.Thread(target=self.run, name="news-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self) -> None:
        """Consume until ``stop()``; never exits on a bad message or a broker outage."""
        self.sink.start()
        for alert in self.store.undelivered_alerts():  # webhooks owed from before a restart
            self.sink.submit(alert)
        self.status["running"] = True
        try:
            while not self._stop.is_set():
                try:
                    if self.consumer is None:
                        self.consumer = make_consumer(self.settings, self.client_id)
                    if self.producer is None:
                        self.producer = make_producer(
                            self.settings, linger_ms=EMIT_LINGER_MS, batch_size=EMIT_BATCH_BYTES
                        )
                    self.poll_once()
                except Exception as exc:  # e.g. the broker is not reachable yet: retry
                    self._error("client", exc)
                    self._stop.wait(1.0)
        finally:
            try:
                if self.consumer is not None:
                    self.finish_inflight()  # emit and commit the last batch before leaving
            except Exception:
                log.exception("finishing the last batch failed")
            self.status["running"] = False
            self._close()

    def _close(self) -> None:
        for client, kwargs in ((self.consumer, {"autocommit": False}), (self.producer, {})):
            if client is not None:
                try:
                    client.close(**kwargs)
                except Exception:
                    log.exception("closing a Kafka client failed")
        self.consumer = self.producer = None
        self.sink.stop()

    # ---- one batch --------------------------------------------------------------------------

    def poll_once(self) -> int:
        """Poll and classify one batch while the previous one is published, stored and
        committed (a two-stage pipeline); returns the number of messages polled."""
        from kafka.errors import KafkaError

        try:
            polled = self.consumer.poll(
                timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.max_batch
            )
        except KafkaError as exc:
            self._error("poll", exc)
            return 0
        messages = sorted(
            (m for batch in polled.values() for m in batch), key=lambda m: (m.partition, m.offset)
        )
        assignment = self.consumer.assignment()
        self.status["assigned"] = sorted(tp.partition for tp in assignment)
        self.engine.expect(f"{tp.topic}/{tp.partition}" for tp in assignment)
        prepared: Prepared | None = None
        failed = False
        if messages:
            try:
                prepared = self.prepare(messages)
            except Exception as exc:  # e.g. the model failed: redo the batch later
                failed = True
                self.metrics.batch_errors.inc()
                self._error("classify", exc)
        rewound = self.finish_inflight()
        if rewound is not None:
            # the previous batch failed and was rewound; this one is dropped and polled again
            # (on partitions the failed batch already rewound to an earlier offset, no seek)
            if messages and not failed:
                self._rewind(messages, reload=False, skip=rewound)
        elif failed:
            self._rewind(messages)
        elif prepared is not None:
            self._inflight = (messages, self._io.submit(self.emit, prepared))
        self._update_lag()
        return len(messages)

    def finish_inflight(self) -> set[tuple[str, int]] | None:
        """Wait for the batch being emitted; commit its offsets, or rewind it on failure
        (then returns the partitions it rewound)."""
        if self._inflight is None:
            return None
        messages, future = self._inflight
        self._inflight = None
        try:
            future.result()
        except Exception as exc:
            self.metrics.batch_errors.inc()
            self._error("batch", exc)
            self._rewind(messages)
            return {(m.topic, m.partition) for m in messages}
        self._commit(messages)
        return None

    def prepare(self, messages: Sequence[Any]) -> Prepared:
        """Validate and classify (one forward pass for the batch); no side effects."""
        started = time.perf_counter()
        self.metrics.messages_in.inc(len(messages))
        self.metrics.batch_size.observe(len(messages))
        rejected: list[tuple[Any, Rejected]] = []
        good: list[tuple[Any, Any]] = []
        received = time.time()
        latest = received + self.settings.max_event_skew_s
        for msg in messages:
            item = decode(msg.value)
            if isinstance(item, Rejected):
                rejected.append((msg, item))
            elif item.published_at.timestamp() > latest:
                reason = (
                    f"published_at {item.published_at.isoformat()} is more than "
                    f"{self.settings.max_event_skew_s:g} s ahead of the receive time "
                    f"{datetime.fromtimestamp(received, UTC).isoformat()}"
                )
                rejected.append((msg, Rejected("future_timestamp", reason)))
            else:
                good.append((msg, item))
        records, observations = classify(
            [item for _, item in good],
            self.model,
            [f"{msg.topic}/{msg.partition}" for msg, _ in good],
        )
        return Prepared(started, rejected, good, records, observations)

    def emit(self, batch: Prepared) -> None:
        """Publish outputs and dead letters, update windows, store, publish alerts; returns
        once everything is flushed (the offsets may then be committed)."""
        dead = [(msg, why, self._dead_letter(msg, why)) for msg, why in batch.rejected]
        futures: list[Any] = []
        for (msg, item), record in zip(batch.good, batch.records, strict=True):
            record["source_partition"] = msg.partition
            record["source_offset"] = msg.offset
            record["source_timestamp_ms"] = msg.timestamp
            futures.append(
                self.producer.send(
                    self.settings.output_topic,
                    key=item.id.encode(),
                    value=to_json(record),  # pydantic's Rust encoder: UTF-8, compact
                )
            )
        observations = batch.observations
        # redeliveries older than the engine's memory are recognised by the store
        known = self.store.known_ids([o.id for o in observations])
        late, duplicates = self.engine.late, self.engine.duplicates
        alerts = self.engine.process([o for o in observations if o.id not in known])
        self.metrics.late_events.inc(self.engine.late - late)
        self.metrics.duplicates.inc(self.engine.duplicates - duplicates + len(known))
        fresh = self.store.save_batch(
            [
                (o, r["topic"]["label"], r["sentiment"]["label"])
                for o, r in zip(observations, batch.records, strict=True)
            ],
            self.engine.export_state(only_dirty=True),
            alerts,
        )
        self.engine.dirty.clear()
        for alert in alerts:
            if alert.id in fresh:
                self.metrics.alerts.labels(alert.rule).inc()
                log.info("alert %s %s score %.2f", alert.rule, alert.key, alert.score)
        pending = self.store.unpublished_alerts()
        for alert_json in pending:
            futures.append(
                self.producer.send(
                    self.settings.alerts_topic,
                    key=alert_json["id"].encode(),
                    value=json.dumps(alert_json).encode(),
                    headers=[("alert_id", alert_json["id"].encode())],
                )
            )
        self.producer.flush(timeout=self.settings.request_timeout_ms / 1000)
        futures += self._resend_too_large(dead)
        failed = [f.exception for f in futures if not f.is_done or f.failed()]
        if failed:
            raise RuntimeError(f"{len(failed)} sends failed, e.g. {failed[0]}")
        self.store.mark_published([a["id"] for a in pending])
        self.metrics.alerts_published.inc(len(pending))
        for alert_json in pending:
            self.sink.submit(alert_json)
        now_ms = time.time() * 1000
        for msg, _ in batch.good:
            if msg.timestamp and msg.timestamp > 0:
                self.metrics.publish_to_classified.observe(max(now_ms - msg.timestamp, 0) / 1000)
        self.metrics.messages_out.inc(len(batch.records))
        self.metrics.batch_seconds.observe(time.perf_counter() - batch.started)
        self.status["batches"] += 1
        self.status["last_batch_at"] = datetime.now(UTC).isoformat()
        self.status["late"] = self.engine.late

    def _dead_letter(self, msg: Any, rejected: Rejected, max_bytes: int | None = None) -> Any:
        from kafka.errors import MessageSizeTooLargeError

        if max_bytes is None:
            self.metrics.dead_lettered.labels(rejected.error).inc()
        key, value, headers = dead_letter(msg, rejected, max_bytes or self.settings.dlq_max_bytes)
        try:
            return self.producer.send(
                self.settings.dlq_topic, key=key, value=value, headers=headers
            )
        except MessageSizeTooLargeError:  # over the producer's max_request_size after all
            if max_bytes == DLQ_FALLBACK_BYTES:
                raise
            return self._dead_letter(msg, rejected, DLQ_FALLBACK_BYTES)

    def _resend_too_large(self, dead: list[tuple[Any, Rejected, Any]]) -> list[Any]:
        """Every dead letter's future, after resending, cut small, those the broker refused as
        too large (its topic may allow less than the producer sends)."""
        from kafka.errors import MessageSizeTooLargeError

        futures, again = [], []
        for msg, why, future in dead:
            if future.is_done and isinstance(future.exception, MessageSizeTooLargeError):
                log.warning(
                    "dead letter of %s/%d@%d too large for the broker: resent cut",
                    msg.topic,
                    msg.partition,
                    msg.offset,
                )
                again.append(self._dead_letter(msg, why, DLQ_FALLBACK_BYTES))
            else:
                futures.append(future)
        if again:
            self.producer.flush(timeout=self.settings.request_timeout_ms / 1000)
        return futures + again

    # ---- offsets ----------------------------------------------------------------------------

    def _commit(self, messages: Sequence[Any]) -> None:
        from kafka import TopicPartition
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata

        offsets: dict[Any, Any] = {}
        for msg in messages:
            tp = TopicPartition(msg.topic, msg.partition)
            offsets[tp] = OffsetAndMetadata(msg.offset + 1, "", -1)
        try:
            self.consumer.commit(offsets)
        except CommitFailedError as exc:
            # the group rebalanced: the partitions' new owner re-reads from the last commit
            self.metrics.commit_failures.inc()
            log.warning("commit refused after a rebalance: %s", exc)
        except KafkaError as exc:
            self.metrics.commit_failures.inc()
            self._error("commit", exc)

    def _rewind(
        self, messages: Sequence[Any], reload: bool = True, skip: set[tuple[str, int]] | None = None
    ) -> None:
        """Seek back to the batch start and rebuild the engine from the store."""
        from kafka import TopicPartition

        first: dict[Any, int] = {}
        for msg in messages:
            tp = TopicPartition(msg.topic, msg.partition)
            first[tp] = min(first.get(tp, msg.offset), msg.offset)
        assigned = self.consumer.assignment()
        for tp, offset in first.items():
            if tp in assigned and (tp.topic, tp.partition) not in (skip or set()):
                self.consumer.seek(tp, offset)
        if reload:
            self.engine = load_engine(self.rules, self.store, self.latest_event_ts())
            self._stop.wait(1.0)

    def _update_lag(self) -> None:
        if time.monotonic() - self._last_lag < self.settings.lag_interval_s:
            return
        self._last_lag = time.monotonic()
        try:
            assigned = list(self.consumer.assignment())
            if not assigned:
                return
            ends = self.consumer.end_offsets(assigned)
            lag = {}
            for tp in assigned:
                position = self.consumer.position(tp)
                lag[tp.partition] = max(int(ends.get(tp, position)) - int(position), 0)
                self.metrics.lag.labels(str(tp.partition)).set(lag[tp.partition])
            self.status["lag"] = lag
        except Exception as exc:  # lag is best effort (some brokers answer end_offsets wrongly)
            log.debug("lag update failed: %s", exc)

    def _error(self, where: str, exc: BaseException) -> None:
        self.metrics.broker_errors.inc()
        self.status["last_error"] = f"{where}: {type(exc).__name__}: {exc}"
        log.warning("%s failed: %s", where, exc)
        self._stop.wait(0.5)
