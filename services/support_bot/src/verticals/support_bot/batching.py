"""Micro-batching of the per-query work that is cheaper in bulk: concurrent requests share one
encoder forward pass and one FAISS search per tenant index. A worker thread takes whatever jobs
are waiting (no timer, so an idle service adds no delay). A flat search reads the whole index
from memory whatever the number of queries (3 ms for one query on 20,000 vectors, 5 ms for 20),
and 20 short queries encode in about the time of three."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verticals.support_bot.index import TenantIndex

Hits = list[tuple[int, float]]


@dataclass
class _Job:
    text: str | None
    vector: np.ndarray | None
    index: TenantIndex | None
    k: int
    future: Future[tuple[np.ndarray, Hits]] = field(default_factory=Future)


class QueryBatcher:
    def __init__(self, encoder: Any, max_batch: int = 64) -> None:
        self.encoder = encoder
        self.max_batch = max_batch
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="query-batcher", daemon=True)
        self._thread.start()

    def encode_one(self, text: str) -> np.ndarray:
        return self._submit(_Job(text, None, None, 0))[0]

    def search(
        self, index: TenantIndex, k: int, text: str | None = None, vector: np.ndarray | None = None
    ) -> tuple[np.ndarray, Hits]:
        """The query's vector (``vector``, or ``text`` encoded) and its ``k`` nearest entries."""
        if (text is None) == (vector is None):
            raise ValueError("give the query as text or as a vector")
        return self._submit(_Job(text, vector, index, k))

    def _submit(self, job: _Job) -> tuple[np.ndarray, Hits]:
        self._queue.put(job)
        return job.future.result()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._serve(batch)
            except Exception as exc:  # hand the failure to every waiting request
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)

    def _serve(self, batch: list[_Job]) -> None:
        texts = [job for job in batch if job.vector is None]
        if texts:
            vectors = self.encoder.encode([job.text for job in texts])
            for job, vector in zip(texts, vectors, strict=True):
                job.vector = vector
        by_index: dict[int, list[_Job]] = {}
        for job in batch:
            if job.index is None:
                job.future.set_result((job.vector, []))  # type: ignore[arg-type]
            else:
                by_index.setdefault(id(job.index), []).append(job)
        for jobs in by_index.values():
            k = max(job.k for job in jobs)
            found = jobs[0].index.dense_many(np.vstack([job.vector for job in jobs]), k)  # type: ignore[union-attr,misc]
            for job, hits in zip(jobs, found, strict=True):
                job.future.set_result((job.vector, hits[: job.k]))  # type: ignore[arg-type]
