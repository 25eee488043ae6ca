"""A tenant's two indexes: dense (a core ``VectorStore``: FAISS in process, exact up to a size,
IVF above, or the shared pgvector table; each entry has two vectors, its full text and its
question alone, under keys 2*pk and 2*pk+1, so upserts and deletes touch only their rows and an
entry scores the better of the two) and BM25 (bm25s, rebuilt lazily after changes; it has no
incremental update), fused by reciprocal rank fusion. Both filter by entry metadata inside
their search. The FAISS form persists to a folder; the pgvector form's vectors are in the
database, written with the entries by ``Knowledge``."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import Stemmer

from verticals.core.vectorstore import FaissStore, Filter, VectorStore, facets, matches
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


def entry_matches(entry: EntryIn, filter: Filter) -> bool:
    return matches(facets(entry.facets()), filter)


class TenantIndex:
    """Thread-safe: one lock guards both indexes and the entry map. ``exact_max``: vectors up to
    which dense search is exact (two per entry). ``shared``: a store whose vectors are written
    elsewhere (pgvector, in the entries' transaction); ``upsert``/``remove`` then only update
    the entry map and BM25. ``version``: the knowledge version the entry map was read at."""

    def __init__(
        self, dimension: int, exact_max: int = 20_000, shared: VectorStore | None = None
    ) -> None:
        self.dimension = dimension
        self.shared = shared is not None
        self.vectors: VectorStore = (
            shared if shared is not None else FaissStore(dimension, exact_max=exact_max)
        )
        self.version = 0
        self.checked_at = -1e9
        """When ``version`` was last compared with the database's (monotonic seconds)."""
        self.entries: dict[int, EntryIn] = {}
        self._bm25: bm25s.BM25 | None = None
        self._bm25_pks: list[int] = []
        self._tokens: dict[int, list[str]] = {}
        """Each entry's BM25 tokens, kept between rebuilds (tokenizing is most of a rebuild)."""
        self._dirty = True
        self.lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.entries)

    # changes -------------------------------------------------------------------------------
    def upsert(
        self,
        items: Sequence[tuple[int, EntryIn]],
        full: np.ndarray | None = None,
        short: np.ndarray | None = None,
    ) -> None:
        """``full``: vectors of the entries' texts; ``short``: of their questions (or titles);
        not needed with a shared store."""
        with self.lock:
            if not self.shared:
                assert full is not None and short is not None
                keys, vectors, meta = vector_rows(items, full, short)
                self.vectors.upsert(keys, vectors, meta)
            for pk, entry in items:
                self.entries[pk] = entry
                self._tokens.pop(pk, None)
            self._dirty = True

    def remove(self, pks: Sequence[int]) -> None:
        if not pks:
            return
        ids = np.asarray(pks, dtype=np.int64)
        with self.lock:
            if not self.shared:
                self.vectors.remove(np.concatenate([ids * 2, ids * 2 + 1]))
            for pk in pks:
                self.entries.pop(pk, None)
            self._dirty = True

    def _ensure_bm25(self) -> None:
        if not self._dirty:
            return
        pks = sorted(self.entries)
        for pk in [pk for pk in self._tokens if pk not in self.entries]:
            del self._tokens[pk]
        todo = [pk for pk in pks if pk not in self._tokens]
        if todo:
            texts = [
                self.entries[pk].index_text()
                + " "
                + " ".join([*self.entries[pk].tags, self.entries[pk].category])
                for pk in todo
            ]
            self._tokens.update(zip(todo, tokenize(texts), strict=True))
        if pks:
            model = bm25s.BM25()
            tokens = [self._tokens[pk] for pk in pks]
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
    def dense(
        self, query: np.ndarray, k: int, filter: Filter | None = None
    ) -> list[tuple[int, float]]:
        return self.dense_many(query.reshape(1, -1), k, filter)[0]

    def dense_many(
        self, queries: np.ndarray, k: int, filter: Filter | None = None
    ) -> list[list[tuple[int, float]]]:
        """Per query, the ``k`` best entries (passing ``filter``) with their cosines (one
        search for all)."""
        ids, scores = self.vectors.search_many(queries, 2 * k, filter or None)
        out = []
        for row_ids, row_scores in zip(ids.tolist(), scores.tolist(), strict=True):
            best: dict[int, float] = {}
            for i, score in zip(row_ids, row_scores, strict=True):
                if i >= 0 and i // 2 not in best:  # results come best first
                    best[i // 2] = float(score)
            out.append(list(best.items())[:k])
        return out

    def sparse(self, query: str, k: int, filter: Filter | None = None) -> list[tuple[int, float]]:
        """BM25's ``k`` best entries passing ``filter`` (scored over all, then masked: BM25
        scores every document anyway)."""
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
            if filter:
                keep = [entry_matches(self.entries[pk], filter) for pk in pks]
                scores = np.where(np.asarray(keep, dtype=bool), scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(pks[int(d)], float(scores[d])) for d in top if scores[d] > 0]

    def cosines(self, pks: Sequence[int], query: np.ndarray) -> list[float]:
        """Each entry's better score of its two vectors against ``query`` (exact)."""
        keys = np.asarray(pks, dtype=np.int64)
        scores = self.vectors.scores(np.concatenate([2 * keys, 2 * keys + 1]), query)
        both = np.maximum(scores[: len(keys)], scores[len(keys) :])
        return [float(x) for x in both]

    # persistence ---------------------------------------------------------------------------
    def save(self, folder: Path, manifest: dict[str, Any]) -> None:
        """The vectors (FAISS is rebuilt from them at load) and BM25, then the manifest."""
        assert isinstance(self.vectors, FaissStore), "only the in-process index is saved"
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
        store = out.vectors
        assert isinstance(store, FaissStore)
        store.table.set(keys, vectors)
        store.rebuild()
        store.set_metadata({int(k): entries[int(k) // 2].facets() for k in keys})
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


def vector_rows(
    items: Sequence[tuple[int, EntryIn]], full: np.ndarray, short: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[dict[str, object]]]:
    """Keys (2*pk: full text, 2*pk+1: question), vectors and metadata of entries' vectors."""
    pks = np.asarray([pk for pk, _ in items], dtype=np.int64)
    meta = [entry.facets() for _, entry in items]
    return np.concatenate([pks * 2, pks * 2 + 1]), np.vstack([full, short]), meta + meta
