"""Vectors in memory and in FAISS, keyed by integer keys (the services' row keys).

The FAISS index maps ids itself (``IndexIDMap2`` over a flat index, or an IVF index, which holds
ids natively), so an update is ``remove_ids`` + ``add_with_ids`` and a delete is ``remove_ids``:
no rebuild. The index is exact (inner product on unit vectors) up to ``exact_max`` vectors; past
it, an IVF index is trained once on the current vectors and replaces it. The vectors also stay in
a numpy table, for exact re-scoring of any key and for saving.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

SELECTOR_MIN = 4096
"""Up to this many allowed keys a filtered search is exact over their vectors (numpy); past it
FAISS searches its index with an id selector."""


class VectorTable:
    """A growable (capacity, dim) float32 array indexed by item key, with a presence mask."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.data = np.zeros((1024, dim), dtype=np.float32)
        self.present = np.zeros(1024, dtype=bool)

    def _grow(self, needed: int) -> None:
        if needed <= len(self.data):
            return
        size = max(needed, 2 * len(self.data))
        data = np.zeros((size, self.dim), dtype=np.float32)
        data[: len(self.data)] = self.data
        present = np.zeros(size, dtype=bool)
        present[: len(self.present)] = self.present
        self.data, self.present = data, present

    def set(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if len(keys):
            self._grow(int(keys.max()) + 1)
            self.data[keys] = vectors
            self.present[keys] = True

    def remove(self, keys: np.ndarray) -> None:
        keys = keys[keys < len(self.present)]
        self.present[keys] = False
        self.data[keys] = 0.0

    def keys(self) -> np.ndarray:
        return np.flatnonzero(self.present).astype(np.int64)

    def __len__(self) -> int:
        return int(np.count_nonzero(self.present))  # 7x faster than sum() (every search asks)


class VectorIndex:
    """FAISS with id mapping; exact up to ``exact_max`` vectors, IVF above. Thread-safe."""

    def __init__(self, dim: int, exact_max: int = 20_000, nprobe: int = 16, threads: int = 1):
        import faiss

        self.faiss = faiss
        if threads:
            faiss.omp_set_num_threads(threads)
        self.dim = dim
        self.exact_max = exact_max
        self.nprobe = nprobe
        self.table = VectorTable(dim)
        self.index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.kind = "flat"
        self.lock = threading.RLock()

    def upsert(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self.lock:
            in_range = keys[keys < len(self.table.present)]
            known = in_range[self.table.present[in_range]]
            if len(known):
                self.index.remove_ids(known)
            self.table.set(keys, vectors)
            if self.kind == "flat" and len(self.table) > self.exact_max:
                self.rebuild(force_ivf=True)
            else:
                self.index.add_with_ids(vectors, keys)

    def remove(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        with self.lock:
            self.index.remove_ids(keys)
            self.table.remove(keys)

    def rebuild(self, force_ivf: bool = False) -> None:
        """Build the index from the table (at start, and once when the catalog outgrows flat)."""
        faiss = self.faiss
        with self.lock:
            keys = self.table.keys()
            vectors = self.table.data[keys]
            if force_ivf or len(keys) > self.exact_max:
                nlist = max(1, min(int(4 * math.sqrt(len(keys))), len(keys) // 39))
                quantizer = faiss.IndexFlatIP(self.dim)
                index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
                sample = vectors[np.random.default_rng(0).permutation(len(vectors))[: nlist * 64]]
                index.train(sample)
                index.nprobe = self.nprobe
                self.index, self.kind = index, "ivf"
            else:
                self.index, self.kind = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim)), "flat"
            if len(keys):
                self.index.add_with_ids(vectors, keys)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` keys and cosines for one query vector (missing slots dropped)."""
        ids, scores = self.search_many(np.asarray(query, np.float32).reshape(1, -1), k)
        mask = ids[0] >= 0
        return ids[0][mask], scores[0][mask]

    def search_many(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keys and cosines (n, k) for n queries in one FAISS call, which reads a flat index
        from memory once for all of them; missing slots have key -1. ``allowed``: only these
        keys are candidates, filtered inside the search (exact over them when they are few, a
        FAISS id selector otherwise), never after it."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n = len(queries)
        with self.lock:
            if allowed is not None:
                allowed = np.asarray(allowed, dtype=np.int64)
                allowed = allowed[allowed < len(self.table.present)]
                allowed = allowed[self.table.present[allowed]]
                size = len(allowed)
            else:
                size = len(self.table)
            if not size or k <= 0:
                return np.full((n, 0), -1, np.int64), np.zeros((n, 0), np.float32)
            k = min(k, size)
            if allowed is None:
                scores, ids = self.index.search(queries, k)
            elif size <= SELECTOR_MIN:
                all_scores = queries @ self.table.data[allowed].T
                top = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
                scores, ids = np.take_along_axis(all_scores, top, axis=1), allowed[top]
            else:
                faiss: Any = self.faiss  # its stubs lack the keyword arguments
                selector = faiss.IDSelectorBatch(allowed)
                params = (
                    faiss.SearchParametersIVF(sel=selector, nprobe=self.nprobe)
                    if self.kind == "ivf"
                    else faiss.SearchParameters(sel=selector)
                )
                scores, ids = self.index.search(queries, k, params=params)
        return ids, scores

    def scores(self, keys: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Exact cosines of ``keys`` (present ones) to one query."""
        keys = np.asarray(keys, dtype=np.int64)
        with self.lock:
            return np.asarray(self.table.data[keys] @ np.asarray(query, np.float32))

    def __len__(self) -> int:
        return len(self.table)
