"""Micro-batching of chat requests: concurrent requests are answered together by one worker
thread, with one encoder pass, one FAISS search per tenant and one transaction for all their
transcripts (``SupportBot.chat_many``). The worker takes whatever is waiting (no timer, so an
idle service adds no delay); requests wait on asyncio futures, not on threads, and are served
in arrival order, so a request never waits behind more than the batch in progress."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Mapping
from typing import Any

from verticals.serving.logging import request_id
from verticals.support_bot.pipeline import Reply, SupportBot, Turn

_Job = tuple[Turn, asyncio.AbstractEventLoop, "asyncio.Future[Reply]"]


class ChatBatcher:
    def __init__(self, bot: SupportBot, max_batch: int = 32) -> None:
        self.bot = bot
        self.max_batch = max_batch
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="chat-batcher", daemon=True)
        self._thread.start()

    async def chat(
        self, tenant: str, session: str, message: str, filter: Mapping[str, str] | None = None
    ) -> Reply:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        turn = Turn(tenant, session, message, request_id.get(), filter or None)
        self._queue.put((turn, loop, future))
        return await future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(job)
            try:
                results: list[Any] = self.bot.chat_many([turn for turn, _, _ in batch])
            except Exception as exc:  # chat_many reports per turn; this is a bug: fail them all
                results = [exc] * len(batch)
            for (_, loop, future), result in zip(batch, results, strict=True):
                loop.call_soon_threadsafe(_settle, future, result)


def _settle(future: asyncio.Future[Reply], result: Any) -> None:
    if future.done():  # the client went away
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
