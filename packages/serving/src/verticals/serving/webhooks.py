"""One webhook sender for every service: a background thread posts JSON bodies with retry,
exponential backoff and an ``Idempotency-Key`` header (a receiver drops the repeats a retry
after a lost answer sends).

``submit`` never blocks the caller: the queue is bounded and, when full, the oldest delivery is
dropped (and reported). Each outcome (``delivered``, ``failed``, ``gave_up``, ``dropped``) is
reported to ``on_outcome``; each attempt's result per body key to ``record``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("verticals.serving.webhooks")


@dataclass(frozen=True)
class _Delivery:
    due: float
    attempt: int
    url: str
    key: str
    body: dict[str, Any]


class WebhookSender:
    def __init__(
        self,
        urls: list[str],
        record: Callable[[str, bool], None] | None = None,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        max_queue: int = 10_000,
        on_outcome: Callable[[str], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
        name: str = "webhooks",
    ) -> None:
        self.urls = [u for u in urls if u]
        self.record = record
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.on_queue = on_queue or (lambda size: None)
        self.name = name
        self._queue: queue.Queue[_Delivery] = queue.Queue(max_queue)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def start(self) -> None:
        """Start the sending thread (once; nothing to do without URLs)."""
        with self._start_lock:
            if self.urls and self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def submit(self, body: dict[str, Any], key: str) -> None:
        """Queue ``body`` for every URL; ``key`` is its ``Idempotency-Key`` (the same on every
        retry)."""
        for url in self.urls:
            self._put(_Delivery(time.monotonic(), 1, url, key, body))

    def _put(self, delivery: _Delivery) -> None:
        while True:
            try:
                self._queue.put_nowait(delivery)
                break
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.on_outcome("dropped")
                except queue.Empty:
                    pass
        self.on_queue(self._queue.qsize())

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                try:
                    delivery = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                wait = delivery.due - time.monotonic()
                if wait > 0:  # not due yet: put it back, look again shortly
                    self._queue.put(delivery)
                    self._stop.wait(min(wait, 0.05))
                    continue
                ok = self._post(client, delivery)
                if self.record:
                    try:
                        self.record(delivery.key, ok)
                    except Exception:  # a store may be closing; the outcome still counts
                        log.exception("could not record webhook outcome")
                if not ok and delivery.attempt < self.max_attempts:
                    delay = self.backoff_s * 2 ** (delivery.attempt - 1)
                    self._put(
                        _Delivery(
                            time.monotonic() + delay,
                            delivery.attempt + 1,
                            delivery.url,
                            delivery.key,
                            delivery.body,
                        )
                    )
                elif not ok:
                    self.on_outcome("gave_up")
                self.on_queue(self._queue.qsize())

    def _post(self, client: Any, delivery: _Delivery) -> bool:
        try:
            response = client.post(
                delivery.url, json=delivery.body, headers={"Idempotency-Key": delivery.key}
            )
            ok = bool(response.status_code < 300)
        except Exception as exc:
            log.warning("webhook %s failed: %s", delivery.url, exc)
            ok = False
        self.on_outcome("delivered" if ok else "failed")
        return ok

    def pending(self) -> int:
        return self._queue.qsize()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
