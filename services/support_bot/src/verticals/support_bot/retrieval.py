"""Retrieval: dense (FAISS or pgvector) and BM25 candidates, both filtered by entry metadata
inside their search when a filter is given, fused by weighted reciprocal rank fusion, each
with its cosine similarity to the query and a softmax probability over the top five; then the
second stage: with a second encoder (``rescoring.py``), the top ``rescore_top`` re-ordered by
the mean of the two encoders' cosines, which becomes each one's confidence; when a reranker is
registered, the top ``rerank_top`` re-ordered by the cross-encoder, whose relevance probability
becomes each one's confidence."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from verticals.core.vectorstore import Filter
from verticals.support_bot.candidates import Candidate, origin
from verticals.support_bot.index import TenantIndex, rrf
from verticals.support_bot.knowledge import Knowledge
from verticals.support_bot.rescoring import Rescorer
from verticals.support_bot.settings import SupportSettings

Mode = Literal["hybrid", "dense", "bm25"]


def softmax_probs(candidates: list[Candidate], temperature: float) -> None:
    """Set ``prob`` of the top five: softmax of confidence (the cosine before the second stage)
    / temperature."""
    top = candidates[:5]
    if not top:
        return
    z = np.array([c.confidence for c in top]) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    for c, value in zip(top, p, strict=True):
        c.prob = float(value)


class Retriever:
    def __init__(
        self,
        settings: SupportSettings,
        encoder: Any,
        knowledge: Knowledge,
        reranker: Any = None,
        rescorer: Rescorer | None = None,
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.knowledge = knowledge
        self.reranker = reranker if settings.rerank else None
        self.rescorer = rescorer

    def second_stage(
        self, queries: Sequence[str], found: list[list[Candidate]], everything: bool = False
    ) -> None:
        """Re-score (second encoder) then rerank (cross-encoder, every candidate of the top when
        ``everything``), each when there is one."""
        if self.rescorer is not None:
            self.rescorer.rescore(queries, found)  # as for a customer's question
            for cands in found:
                softmax_probs(cands, self.settings.temperature)
        self.rerank(queries, found, everything)

    def to_rerank(self, candidates: list[Candidate]) -> list[Candidate]:
        """The top ``rerank_top`` candidates when the race is close (the first one's confidence
        leads every other entry's by less than ``rerank_gap``), else the first one alone: its
        relevance is all the decision needs."""
        top = candidates[: self.settings.rerank_top]
        if not top:
            return top
        own = origin(top[0].entry)
        others = [c.confidence for c in top[1:] if origin(c.entry) != own]
        close = bool(others) and top[0].confidence - max(others) < self.settings.rerank_gap
        return top if close else top[:1]

    def rerank(
        self, queries: Sequence[str], found: list[list[Candidate]], everything: bool = False
    ) -> None:
        """Re-order each query's top ``rerank_top`` candidates by the reranker (one pass for
        every pair of every query; unless ``everything``, only the first when the race is not
        close, see :meth:`to_rerank`); they keep their cosines, and gain a relevance."""
        if self.reranker is None:
            return
        n = self.settings.rerank_top
        pairs = [
            (q, c)
            for q, cands in zip(queries, found, strict=True)
            for c in (cands[:n] if everything else self.to_rerank(cands))
        ]
        if not pairs:
            return
        logits = self.reranker.logits(
            [q for q, _ in pairs], [c.entry.index_text() for _, c in pairs]
        )
        for (_, c), logit in zip(pairs, logits, strict=True):
            c.relevance = float(1.0 / (1.0 + np.exp(-logit)))
        for cands in found:
            cands[:n] = sorted(cands[:n], key=lambda c: -(c.relevance or 0.0))

    def retrieve(
        self,
        tenant: str,
        query: str,
        mode: Mode = "hybrid",
        k: int | None = None,
        vector: np.ndarray | None = None,
        boost_category: str | None = None,
        rerank: bool = True,
        filter: Filter | None = None,
    ) -> list[Candidate]:
        """Fused candidates, best first, each with its cosine to the query, then (``rerank``)
        through the second stage; only entries passing ``filter`` (metadata key/values)."""
        index = self.knowledge.fresh_index(tenant)
        k = k or self.settings.candidates
        qvec = vector if vector is not None else self.encoder.encode([query])[0]
        dense = index.dense_many(qvec.reshape(1, -1), k, filter)[0] if mode != "bm25" else []
        found = self.fuse(index, query, qvec, dense, mode, k, boost_category, filter)
        if rerank:
            self.second_stage([query], [found])
        return found

    def retrieve_many(
        self,
        tenant: str,
        queries: Sequence[str],
        vectors: np.ndarray,
        boosts: Sequence[str | None],
        filters: Sequence[Filter | None] | None = None,
    ) -> list[list[Candidate]]:
        """Hybrid candidates for several queries of one tenant: one dense search for all the
        queries with the same filter, one second-stage pass for all."""
        k = self.settings.candidates
        index = self.knowledge.fresh_index(tenant)
        wanted = list(filters) if filters is not None else [None] * len(queries)
        dense: list[list[tuple[int, float]]] = [[] for _ in queries]
        groups: dict[str, list[int]] = {}
        for i, f in enumerate(wanted):
            groups.setdefault(json.dumps(f or {}, sort_keys=True), []).append(i)
        for rows in groups.values():
            hits = index.dense_many(vectors[rows], k, wanted[rows[0]])
            for i, found_hits in zip(rows, hits, strict=True):
                dense[i] = found_hits
        found = [
            self.fuse(index, q, v, hits, "hybrid", k, boost, f)
            for q, v, hits, boost, f in zip(queries, vectors, dense, boosts, wanted, strict=True)
        ]
        self.second_stage(queries, found)
        return found

    def fuse(
        self,
        index: TenantIndex,
        query: str,
        qvec: np.ndarray,
        dense: list[tuple[int, float]],
        mode: Mode,
        k: int,
        boost_category: str | None,
        filter: Filter | None = None,
    ) -> list[Candidate]:
        """BM25 for ``query``, fused with the ``dense`` hits; cosines for every candidate."""
        sparse = index.sparse(query, k, filter) if mode != "dense" else []
        fused = rrf(
            [[p for p, _ in dense], [p for p, _ in sparse]],
            self.settings.rrf_k,
            [self.settings.dense_weight, self.settings.bm25_weight],
        )
        if boost_category:
            bonus = self.settings.intent_weight / (self.settings.rrf_k + 1)
            fused = sorted(
                (
                    (pk, s + (bonus if index.entries[pk].category == boost_category else 0.0))
                    for pk, s in fused
                    if pk in index.entries
                ),
                key=lambda kv: -kv[1],
            )
        fused = [(pk, s) for pk, s in fused if pk in index.entries][:k]
        cosines = dict(dense)
        missing = [pk for pk, _ in fused if pk not in cosines]
        if missing:
            cosines.update(zip(missing, index.cosines(missing, qvec), strict=True))
        out = [Candidate(pk, index.entries[pk], s, float(cosines[pk])) for pk, s in fused]
        softmax_probs(out, self.settings.temperature)
        return out
