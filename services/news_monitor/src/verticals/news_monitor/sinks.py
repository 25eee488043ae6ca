"""Webhook sink: a background thread posts alerts with retry and exponential backoff.

``submit`` never blocks the stream (a bounded queue; when full the oldest alert is dropped and
counted). Outcomes are counted in metrics and recorded per alert in the store.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from verticals.news_monitor.metrics import MonitorMetrics

log = logging.getLogger("verticals.news_monitor.webhooks")


class WebhookSink:
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
        self.urls = list(urls)
        self.metrics = metrics
        self.record = record
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._queue: queue.Queue[tuple[float, int, str, dict[str, Any]]] = queue.Queue(max_queue)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.urls and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
            self._thread.start()

    def submit(self, alert: dict[str, Any]) -> None:
        for url in self.urls:
            self._put((time.monotonic(), 1, url, alert))

    def _put(self, item: tuple[float, int, str, dict[str, Any]]) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                break
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.metrics.webhook.labels("dropped").inc()
                except queue.Empty:
                    pass
        self.metrics.webhook_queue.set(self._queue.qsize())

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                try:
                    due, attempt, url, alert = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                wait = due - time.monotonic()
                if wait > 0:  # not due yet: put it back, look again shortly
                    self._queue.put((due, attempt, url, alert))
                    self._stop.wait(min(wait, 0.05))
                    continue
                ok = self._post(client, url, alert)
                if self.record:
                    try:
                        self.record(alert["id"], ok)
                    except Exception:  # the store may be closing; the metric still counts
                        log.exception("could not record webhook outcome")
                if not ok and attempt < self.max_attempts:
                    delay = self.backoff_s * 2 ** (attempt - 1)
                    self._put((time.monotonic() + delay, attempt + 1, url, alert))
                elif not ok:
                    self.metrics.webhook.labels("gave_up").inc()
                self.metrics.webhook_queue.set(self._queue.qsize())

    def _post(self, client: Any, url: str, alert: dict[str, Any]) -> bool:
        try:
            response = client.post(url, json=alert, headers={"Idempotency-Key": alert["id"]})
            ok = response.status_code < 300
        except Exception as exc:
            log.warning("webhook %s failed: %s", url, exc)
            ok = False
        self.metrics.webhook.labels("delivered" if ok else "failed").inc()
        return ok

    def pending(self) -> int:
        return self._queue.qsize()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
