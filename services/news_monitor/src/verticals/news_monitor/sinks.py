"""The alerts' webhooks: the shared ``verticals.serving.webhooks.WebhookSender`` (background
thread, retry with exponential backoff, ``Idempotency-Key``: the alert id), its outcomes counted
in the monitor's metrics and recorded per alert in the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from verticals.news_monitor.metrics import MonitorMetrics
from verticals.serving.webhooks import WebhookSender


class WebhookSink(WebhookSender):
    def __init__(
        self,
        urls: list[str],
        metrics: MonitorMetrics,
        record: Callable[[str, bool], None] | None = None,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        max_queue: int = 10_000,
    ) -> None:
        super().__init__(
            urls,
            record,
            max_attempts,
            backoff_s,
            timeout_s,
            max_queue,
            on_outcome=lambda outcome: metrics.webhook.labels(outcome).inc(),
            on_queue=metrics.webhook_queue.set,
        )

    def submit(self, alert: dict[str, Any], key: str | None = None) -> None:  # type: ignore[override]
        """Queue an alert; its id is the idempotency key."""
        super().submit(alert, key or str(alert["id"]))
