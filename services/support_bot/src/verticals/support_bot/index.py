"""A tenant's two indexes: dense (the core's ``VectorIndex``: FAISS, exact up to a size, IVF
above; each entry has two vectors, its full text and its question alone, under keys 2*pk and
2*pk+1, so upserts and deletes touch only their rows and an entry scores the better of the two)
and BM25 (bm25s, rebuilt lazily after changes; it has no incremental update), fused by
reciprocal rank fusion. Both persist to a folder."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import Stemmer

from verticals.core.vectors import VectorIndex
from verticals.support_bot.text import EntryIn

_STEMMER = Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    out = bm25s.tokenize(
        list(texts), stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False
    )
    return out  # type: ignore[return-value]


def rrf(
    rankings: Sequence[Sequence[int]], k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion: sum of w/(k + rank) over the rankings, best first."""
    scores: dict[int, float] = {}
    for i, ranking in enumerate(rankings):
        w = weights[i] if weights else 1.0
        for rank, pk in enumerate(ranking, start=1):
            scores[pk] = scores.get(pk, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


class TenantIndex:
    """Thread-safe: one lock guards both indexes and the entry map. ``exact_max``: vectors up to
    which dense search is exact (two per entry)."""

    def __init__(self, dimension: int, exact_max: int = 20_000) -> None:
        self.dimension = dimension
        self.vectors = VectorIndex(dimension, exact_max=exact_max)
        self.entries: dict[int, EntryIn] = {}
        self._bm25: bm25s.BM25 | None = None
        self._bm25_pks: list[int] = []
        self._dirty = True
        self.lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.entries)

    # changes -------------------------------------------------------------------------------
    def upsert(
        self, items: Sequence[tuple[int, EntryIn]], full: np.ndarray, short: np.ndarray
    ) -> None:
        """``full``: vectors of the entries' texts; ``short``: of their questions (or titles)."""
        pks = np.asarray([pk for pk, _ in items], dtype=np.int64)
        with self.lock:
            self.vectors.upsert(np.concatenate([pks * 2, pks * 2 + 1]), np.vstack([full, short]))
            for pk, entry in items:
                self.entries[pk] = entry
            self._dirty = True

    def remove(self, pks: Sequence[int]) -> None:
        if not pks:
            return
        ids = np.asarray(pks, dtype=np.int64)
        with self.lock:
            self.vectors.remove(np.concatenate([ids * 2, ids * 2 + 1]))
            for pk in pks:
                self.entries.pop(pk, None)
            self._dirty = True

    def _ensure_bm25(self) -> None:
        if not self._dirty:
            return
        pks = sorted(self.entries)
        if pks:
            model = bm25s.BM25()
            tokens = tokenize(
                [
                    self.entries[pk].index_text()
                    + " "
                    + " ".join([*self.entries[pk].tags, self.entries[pk].category])
                    for pk in pks
                ]
            )
            if any(tokens):  # bm25s cannot index a corpus without a single token
                model.index(tokens, show_progress=False)
                self._bm25 = model
            else:
                self._bm25 = None
        else:
            self._bm25 = None
        self._bm25_pks = pks
        self._dirty = False

    # search --------------------------------------------------------------------------------
    def dense(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        return self.dense_many(query.reshape(1, -1), k)[0]

    def dense_many(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Per query, the ``k`` best entries with their cosines (one search for all)."""
        ids, scores = self.vectors.search_many(queries, 2 * k)
        out = []
        for row_ids, row_scores in zip(ids.tolist(), scores.tolist(), strict=True):
            best: dict[int, float] = {}
            for i, score in zip(row_ids, row_scores, strict=True):
                if i >= 0 and i // 2 not in best:  # results come best first
                    best[i // 2] = float(score)
            out.append(list(best.items())[:k])
        return out

    def sparse(self, query: str, k: int) -> list[tuple[int, float]]:
        tokens = tokenize([query])[0]
        with self.lock:
            self._ensure_bm25()
            if self._bm25 is None or not tokens:
                return []
            known = [t for t in tokens if t in self._bm25.vocab_dict]
            if not known:
                return []
            # scores of every document, then the top k: bm25s' retrieve() costs a thread pool
            # per call on top of this
            scores = self._bm25.get_scores(known)
            pks = self._bm25_pks
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(pks[int(d)], float(scores[d])) for d in top if scores[d] > 0]

    def cosines(self, pks: Sequence[int], query: np.ndarray) -> list[float]:
        """Each entry's better score of its two vectors against ``query`` (exact)."""
        keys = np.asarray(pks, dtype=np.int64)
        with self.lock:
            table = self.vectors.table.data
            both = np.maximum(table[2 * keys] @ query, table[2 * keys + 1] @ query)
        return [float(x) for x in both]

    # persistence ---------------------------------------------------------------------------
    def save(self, folder: Path, manifest: dict[str, Any]) -> None:
        """The vectors (FAISS is rebuilt from them at load) and BM25, then the manifest."""
        folder.mkdir(parents=True, exist_ok=True)
        with self.lock:
            self._ensure_bm25()
            keys = self.vectors.table.keys()
            with (folder / "vectors.tmp").open("wb") as handle:
                np.savez(handle, keys=keys, vectors=self.vectors.table.data[keys])
            (folder / "vectors.tmp").replace(folder / "vectors.npz")
            if self._bm25 is not None:
                self._bm25.save(str(folder / "bm25"), show_progress=False)
            body = {**manifest, "count": len(self), "bm25_pks": self._bm25_pks}
        (folder / "manifest.tmp").write_text(json.dumps(body))
        (folder / "manifest.tmp").replace(folder / "manifest.json")

    @classmethod
    def load(
        cls,
        folder: Path,
        entries: dict[int, EntryIn],
        expect: dict[str, Any],
        exact_max: int = 20_000,
    ) -> TenantIndex | None:
        """The saved index if it matches ``expect`` (encoder version) and the stored entries."""
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            if any(manifest.get(k) != v for k, v in expect.items()):
                return None
            with np.load(folder / "vectors.npz") as saved:
                keys, vectors = saved["keys"], saved["vectors"]
        except (OSError, ValueError, KeyError):
            return None
        if set((keys // 2).tolist()) != set(entries) or len(keys) != 2 * len(entries):
            return None
        out = cls(vectors.shape[1], exact_max)
        out.vectors.table.set(keys, vectors)
        out.vectors.rebuild()
        out.entries = dict(entries)
        pks = manifest.get("bm25_pks", [])
        if pks == sorted(entries) and (folder / "bm25").is_dir():
            try:
                out._bm25 = bm25s.BM25.load(str(folder / "bm25"), show_progress=False)
                out._bm25_pks = pks
                out._dirty = False
            except (OSError, ValueError):
                out._dirty = True
        return out
