"""Prometheus metrics of the monitor, on the app's registry (or a private one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.messages_in = Counter("news_messages_in", "Messages read from the input", registry=r)
        self.messages_out = Counter("news_messages_out", "Enriched records published", registry=r)
        self.dead_lettered = Counter(
            "news_dead_lettered", "Messages sent to the dead-letter topic", ["error"], registry=r
        )
        self.duplicates = Counter(
            "news_duplicates", "Redelivered items already counted by the alert windows", registry=r
        )
        self.late_events = Counter(
            "news_late_events",
            "Items older than the watermark (outside evaluated windows)",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "news_batch_seconds",
            "Time to process one polled batch",
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.batch_size = Histogram(
            "news_batch_size",
            "Messages per polled batch",
            registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )
        self.publish_to_classified = Histogram(
            "news_publish_to_classified_seconds",
            "Kafka record timestamp to classified and published",
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.lag = Gauge(
            "news_consumer_lag", "Messages behind the log end", ["partition"], registry=r
        )
        self.alerts = Counter("news_alerts", "Alerts raised", ["rule"], registry=r)
        self.alerts_published = Counter(
            "news_alerts_published", "Alerts written to the alerts topic", registry=r
        )
        self.webhook = Counter(
            "news_webhook_attempts", "Webhook POSTs by outcome", ["outcome"], registry=r
        )
        self.webhook_queue = Gauge("news_webhook_queue", "Alerts waiting for webhooks", registry=r)
        self.commit_failures = Counter(
            "news_commit_failures", "Offset commits refused (e.g. after a rebalance)", registry=r
        )
        self.batch_errors = Counter(
            "news_batch_errors", "Batches that failed and were retried", registry=r
        )
        self.broker_errors = Counter(
            "news_broker_errors", "Kafka errors the consumer recovered from", registry=r
        )
