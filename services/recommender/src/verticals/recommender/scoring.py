"""Candidates, blending, filters and MMR: the ranking shared by the API and the evaluation.

A score is ``w_text * cosine(user or query, item) + w_pop * popularity + w_co * co-occurrence``,
each signal scaled to [0, 1]. Candidates come from FAISS (the user vector), the co-occurrence
neighbours of the user's recent items and the most popular items; filters narrow them; MMR
re-ranks the best for diversity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verticals.core.vectors import VectorIndex
from verticals.recommender.catalog import Filters, ItemMeta
from verticals.recommender.model import CoScores, InteractionModel, UserState
from verticals.recommender.settings import ScorerWeights

EXHAUSTIVE_BELOW = 20_000
"""When filters leave at most this many items, score all of them instead of sampling candidates."""


@dataclass(frozen=True)
class Ranked:
    keys: np.ndarray
    scores: np.ndarray
    strategy: str


def signals(
    model: InteractionModel,
    keys: np.ndarray,
    text_vector: np.ndarray | None,
    cooc: CoScores,
) -> np.ndarray:
    """A (3, len(keys)) array: text cosine, popularity, co-occurrence, each in [0, 1]."""
    out = np.zeros((3, len(keys)), dtype=np.float32)
    if text_vector is not None:
        out[0] = np.clip(model.vectors.data[keys] @ text_vector, 0.0, None)
    out[1] = model.popularity_of(keys)
    if cooc:
        top = float(cooc.values.max())
        if top > 0:
            out[2] = cooc.lookup(keys) / top
    return out


def weight_vector(weights: ScorerWeights) -> np.ndarray:
    return np.array([weights.text, weights.popularity, weights.cooccurrence], dtype=np.float32)


def blend(
    model: InteractionModel,
    keys: np.ndarray,
    weights: ScorerWeights,
    text_vector: np.ndarray | None,
    cooc: CoScores,
) -> np.ndarray:
    """The blended score of ``keys``."""
    return weight_vector(weights) @ signals(model, keys, text_vector, cooc)


def mmr(
    vectors: np.ndarray, keys: np.ndarray, scores: np.ndarray, k: int, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """Maximal marginal relevance over ``keys`` (already sorted by score, best first)."""
    if lam >= 1.0 or len(keys) <= 1:
        return keys[:k], scores[:k]
    pool = min(len(keys), max(5 * k, 50))
    keys, scores = keys[:pool], scores[:pool]
    vecs = vectors[keys]
    span = float(scores.max() - scores.min()) or 1.0
    relevance = (scores - scores.min()) / span
    chosen = [0]
    max_sim = vecs @ vecs[0]
    available = np.ones(pool, dtype=bool)
    available[0] = False
    while len(chosen) < min(k, pool):
        value = lam * relevance - (1 - lam) * max_sim
        value[~available] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, vecs @ vecs[best])
    idx = np.array(chosen)
    return keys[idx], scores[idx]


def _rank(
    model: InteractionModel,
    meta: ItemMeta,
    candidates: np.ndarray,
    weights: ScorerWeights,
    text_vector: np.ndarray | None,
    cooc: CoScores,
    filters: Filters,
    excluded: set[int],
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    candidates = np.unique(candidates.astype(np.int64))
    candidates = candidates[meta.mask(candidates, filters)]
    if excluded and len(candidates):
        candidates = candidates[~np.isin(candidates, np.fromiter(excluded, np.int64))]
    if not len(candidates):
        return candidates, np.zeros(0, dtype=np.float32)
    scores = blend(model, candidates, weights, text_vector, cooc)
    order = np.argsort(-scores, kind="stable")
    return mmr(model.vectors.data, candidates[order], scores[order], k, weights.mmr_lambda)


def _candidates(
    model: InteractionModel,
    index: VectorIndex,
    meta: ItemMeta,
    text_vector: np.ndarray | None,
    cooc: CoScores,
    filters: Filters,
    n: int,
) -> np.ndarray:
    if filters.categories and meta.category_size(filters.categories) <= EXHAUSTIVE_BELOW:
        keys = meta.all_keys()
        return keys[meta.mask(keys, filters)]
    parts = [model.top_popular(n)]
    if text_vector is not None:
        parts.append(index.search(text_vector, n)[0])
    if cooc:
        parts.append(cooc.top(n))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def recommend_for_user(
    model: InteractionModel,
    index: VectorIndex,
    meta: ItemMeta,
    user: UserState | None,
    weights: ScorerWeights,
    filters: Filters,
    k: int,
    n_candidates: int,
    query_vector: np.ndarray | None = None,
) -> Ranked:
    """Personal ranking; a user without history gets query matches or popular/trending items."""
    user_vector = user.vector() if user else None
    if user_vector is None:
        if query_vector is not None:
            cold = ScorerWeights(
                text=1.0, popularity=0.1, cooccurrence=0.0, mmr_lambda=weights.mmr_lambda
            )
            cands = _candidates(
                model, index, meta, query_vector, CoScores.empty(), filters, n_candidates
            )
            keys, scores = _rank(
                model, meta, cands, cold, query_vector, CoScores.empty(), filters, set(), k
            )
            return fill_newest(meta, Ranked(keys, scores, "cold_start_query"), filters, set(), k)
        cold = ScorerWeights(text=0.0, popularity=1.0, cooccurrence=0.0, mmr_lambda=1.0)
        cands = _candidates(
            model, index, meta, None, CoScores.empty(), filters, max(n_candidates, k)
        )
        keys, scores = _rank(model, meta, cands, cold, None, CoScores.empty(), filters, set(), k)
        # no interactions yet anywhere: the newest catalog items that pass the filters
        strategy = "cold_start_popular" if len(keys) else "cold_start_newest"
        return fill_newest(meta, Ranked(keys, scores, strategy), filters, set(), k)
    assert user is not None
    text_vector = user_vector
    if query_vector is not None:
        text_vector = user_vector + query_vector
        text_vector = (text_vector / max(float(np.linalg.norm(text_vector)), 1e-9)).astype(
            np.float32
        )
    cooc = model.cooccurring(model.user_seeds(user))
    excluded: set[int] = set()
    if filters.exclude_seen:
        excluded |= user.seen
    if filters.exclude_purchased:
        excluded |= user.purchased
    cands = _candidates(model, index, meta, text_vector, cooc, filters, n_candidates)
    keys, scores = _rank(model, meta, cands, weights, text_vector, cooc, filters, excluded, k)
    return fill_newest(meta, Ranked(keys, scores, "personal"), filters, excluded, k)


def fill_newest(
    meta: ItemMeta, ranked: Ranked, filters: Filters, excluded: set[int], k: int
) -> Ranked:
    """Fill a short list up to ``k`` with the newest items that pass the filters (score 0),
    keeping the strategy: a new user asking for 10 gets 10 even if only 4 items have events."""
    if len(ranked.keys) >= k:
        return ranked
    newest = meta.all_keys()[::-1]
    newest = newest[meta.mask(newest, filters)]
    skip = set(ranked.keys.tolist()) | excluded
    extra = [key for key in newest[: k + len(skip)].tolist() if key not in skip]
    if len(extra) < k - len(ranked.keys):  # many skipped keys among the newest: look further
        extra = [key for key in newest.tolist() if key not in skip]
    extra = extra[: k - len(ranked.keys)]
    keys = np.concatenate([ranked.keys, np.array(extra, dtype=np.int64)]).astype(np.int64)
    scores = np.concatenate([ranked.scores, np.zeros(len(extra), dtype=np.float32)])
    return Ranked(keys, scores.astype(np.float32), ranked.strategy)


def similar_items(
    model: InteractionModel,
    index: VectorIndex,
    meta: ItemMeta,
    key: int,
    weights: ScorerWeights,
    filters: Filters,
    k: int,
    n_candidates: int,
) -> Ranked:
    """Items like ``key``: its text neighbours blended with its co-occurrence neighbours."""
    vector = model.vectors.data[key]
    cooc = model.cooccurring([key])
    cands = _candidates(model, index, meta, vector, cooc, filters, n_candidates)
    text_weight = max(weights.text, 0.5)
    blend_weights = weights.model_copy(
        update={"text": text_weight, "popularity": weights.popularity / 4}
    )
    keys, scores = _rank(model, meta, cands, blend_weights, vector, cooc, filters, {key}, k)
    return Ranked(keys, scores, "similar")


def user_signals(model: InteractionModel, user: UserState, n_items: int) -> np.ndarray:
    """Signals of every item 0..n_items-1 for ``user`` (the offline full ranking)."""
    keys = np.arange(n_items, dtype=np.int64)
    return signals(model, keys, user.vector(), model.cooccurring(model.user_seeds(user)))
