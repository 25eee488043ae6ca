"""The handoff webhook goes through the shared sender: a receiver that fails once gets the
handoff again, under the same Idempotency-Key (it was fire-and-forget: one try, then lost)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def test_a_failed_handoff_webhook_is_retried_under_one_key(
    tmp_path: Any, encoder: Any, settings_factory: Any
) -> None:
    from verticals.support_bot.pipeline import SupportBot

    posts: list[tuple[str, dict]] = []
    delivered = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            posts.append((self.headers.get("Idempotency-Key", ""), body))
            self.send_response(503 if len(posts) == 1 else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if len(posts) > 1:
                delivered.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)  # the kernel picks the port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    bot = SupportBot(settings_factory(tmp_path, webhook_url=url), encoder=encoder, persist=False)
    try:
        bot.create_tenant("hooks")
        reply = bot.chat("hooks", "s", "anything at all?")  # empty knowledge base: hand off
        assert reply.kind == "handoff"
        assert delivered.wait(30), f"the webhook was not retried: {posts}"
    finally:
        bot.conversations.webhooks.stop()
        server.shutdown()
        server.server_close()
    key = f"handoff-hooks-{reply.handoff_id}"
    assert [k for k, _ in posts] == [key, key]
    assert posts[0][1] == posts[1][1] and posts[1][1]["id"] == reply.handoff_id
