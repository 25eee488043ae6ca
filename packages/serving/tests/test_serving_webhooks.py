"""The shared webhook sender against a real local HTTP receiver: failed posts are retried with
backoff under the same Idempotency-Key, a receiver that never answers 2xx is given up on, and
a full queue drops the oldest delivery."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from verticals.serving.webhooks import WebhookSender


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Receiver:
    """An HTTP server on port 0 answering 503 to the first ``failures`` posts, then 204."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.posts: list[tuple[str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((self.headers.get("Idempotency-Key", ""), body))
                self.send_response(503 if len(receiver.posts) <= receiver.failures else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_retries_with_the_same_idempotency_key_until_delivered() -> None:
    receiver = Receiver(failures=2)
    outcomes: list[str] = []
    recorded: list[tuple[str, bool]] = []
    sender = WebhookSender(
        [receiver.url],
        record=lambda key, ok: recorded.append((key, ok)),
        backoff_s=0.05,
        on_outcome=outcomes.append,
    )
    sender.start()
    try:
        sender.submit({"event": "handoff", "id": 7}, key="handoff-t-7")
        assert wait_for(lambda: "delivered" in outcomes, timeout=10)
    finally:
        sender.stop()
        receiver.close()
    assert [key for key, _ in receiver.posts] == ["handoff-t-7"] * 3
    assert outcomes == ["failed", "failed", "delivered"]
    assert recorded == [("handoff-t-7", False), ("handoff-t-7", False), ("handoff-t-7", True)]
    assert sender.pending() == 0


def test_gives_up_after_max_attempts() -> None:
    receiver = Receiver(failures=100)
    outcomes: list[str] = []
    sender = WebhookSender(
        [receiver.url], max_attempts=3, backoff_s=0.02, on_outcome=outcomes.append
    )
    sender.start()
    try:
        sender.submit({"id": "a1"}, key="a1")
        assert wait_for(lambda: "gave_up" in outcomes, timeout=10)
    finally:
        sender.stop()
        receiver.close()
    assert len(receiver.posts) == 3 and outcomes == ["failed"] * 3 + ["gave_up"]


def test_a_full_queue_drops_the_oldest_and_no_urls_sends_nothing() -> None:
    outcomes: list[str] = []
    sender = WebhookSender(["http://127.0.0.1:9/never"], max_queue=2, on_outcome=outcomes.append)
    for i in range(3):  # not started: nothing leaves the queue
        sender.submit({"id": i}, key=str(i))
    assert outcomes == ["dropped"] and sender.pending() == 2
    idle = WebhookSender([""])
    idle.start()
    idle.submit({"id": 1}, key="1")
    assert idle.urls == [] and idle.pending() == 0 and idle._thread is None
