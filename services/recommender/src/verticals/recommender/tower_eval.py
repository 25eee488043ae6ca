"""MovieLens figures for the learnt user tower, side by side with popularity, EASE,
co-occurrence and the previous hybrid, paired on the same users (same protocol as
:mod:`verticals.recommender.movielens`), plus the seen filter and the cold-item protocol.

Seen filter: everything the user rated before the test time (any rating, not only the liked
ones) is excluded from the ranking, as the service excludes every item a user had an event on.

Cold items: a cut-off time makes the items first rated after it (the newest fifth of the
catalog) new. New items are kept out of training: models learn from the liked ratings of the
known items only (every user, every time; a tested user's own history stops at the test event).
Each user with >= 3 liked known items before their first liked new item is tested on that item,
ranked over all items (and, separately, among the new items only), their history excluded. New
items have no interactions: popularity and EASE cannot rank them, the tower finds them through
their text (its id part is left out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from verticals.core.config import SequenceConfig, TrainingConfig
from verticals.core.sequence import fit_tower, leave_last_out
from verticals.recommender.movielens import K, MovieLens, build_model, metrics
from verticals.recommender.scoring import user_signals
from verticals.recommender.settings import RecommenderSettings, ScorerWeights
from verticals.recommender.tower import TOWER_SETTINGS

TOWER = SequenceConfig(**TOWER_SETTINGS)
TRAINING = TrainingConfig(
    epochs=60, batch_size=128, learning_rate=3e-3, weight_decay=0.0, patience=8
)
BLEND_GRID = [
    (1.0, p, c) for p in (0.0, 0.05, 0.1, 0.2, 0.4) for c in (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
]


def histories(data: MovieLens, held: set[int]) -> dict[str, list[int]]:
    """Each user's liked items in time order, the held-out positions left out."""
    out: dict[str, list[int]] = {}
    for position, (user, item, _) in enumerate(data.events):
        if position not in held:
            out.setdefault(user, []).append(item)
    return out


def rank_of(scores: np.ndarray, excluded: np.ndarray, target: int) -> int:
    """The target's rank (0 = first) among all items, ``excluded`` removed; ties by item
    index (deterministic)."""
    row = scores.astype(np.float64) - np.arange(len(scores)) * 1e-9
    row[excluded] = -np.inf
    return int((row > row[target]).sum()) if np.isfinite(row[target]) else len(row)


def ease(history: dict[str, list[int]], n_items: int, lam: float = 500.0) -> np.ndarray:
    """EASE (Steck 2019): B = I - P / diag(P), P = (X'X + lam I)^-1, over items with data."""
    active = np.unique([i for rows in history.values() for i in rows])
    col = {item: c for c, item in enumerate(active)}
    x = np.zeros((len(history), len(active)), dtype=np.float32)
    for u, rows in enumerate(history.values()):
        x[u, [col[i] for i in rows]] = 1.0
    gram = x.T @ x + lam * np.eye(len(active), dtype=np.float32)
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    full = np.zeros((n_items, n_items), dtype=np.float32)
    full[np.ix_(active, active)] = b
    return full


def tower_scores(
    net: Any, text: np.ndarray, users: list[list[int]], max_length: int, known: np.ndarray | None
) -> np.ndarray:
    """(users, items) tower scores; ``known`` False: the item's id part is left out."""
    import torch

    from verticals.core.sequence import _gather, _pad

    with torch.no_grad():
        keep = None if known is None else torch.from_numpy(known.astype(np.float32))
        items = net.items(torch.from_numpy(np.ascontiguousarray(text)), keep)
        rows = torch.from_numpy(_pad(users, max_length))
        vectors = net.users(_gather(items, rows))[:, -1]
        return (vectors @ items.T).numpy()


def bootstrap_ci(hits: np.ndarray, rounds: int = 2000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    means = hits[rng.integers(0, len(hits), size=(rounds, len(hits)))].mean(axis=1)
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]


def paired_ci(a: np.ndarray, b: np.ndarray) -> list[float]:
    """95% bootstrap interval of mean(a - b) over the same users."""
    return bootstrap_ci(a.astype(np.float64) - b.astype(np.float64))


def _blend(
    signals: np.ndarray, tower: np.ndarray, weights: tuple[float, float, float]
) -> np.ndarray:
    rel = np.exp(tower - tower.max())
    return weights[0] * rel + weights[1] * signals[1] + weights[2] * signals[2]


def train_movielens_tower(
    data: MovieLens, vectors: np.ndarray, registry: Any, task: str, show_progress: bool
) -> tuple[Any, dict[str, Any]]:
    """Train the tower with the core's ``sequence`` kind on every user's liked items in time
    order: its leave-last-out split is this protocol's (last = test, the one before =
    validation), so it learns from the training items only. Returns the net and its card."""
    from verticals.core.config import DataConfig, TrainConfig
    from verticals.core.sequence import Sequences, UserTower
    from verticals.core.training import run_training

    per_user = histories(data, set())
    sequences = Sequences(
        vectors, [str(i) for i in range(len(vectors))], list(per_user), list(per_user.values())
    )
    config = TrainConfig(
        task=task, kind="sequence", data=DataConfig(), sequence=TOWER, training=TRAINING
    )
    outcome = run_training(config, registry, show_progress=show_progress, records=sequences)
    registry.promote(task, outcome.version, force=True)
    return UserTower.from_directory(outcome.path).net, registry.card(task, outcome.version)


def evaluate_tower(
    data: MovieLens,
    vectors: np.ndarray,
    settings: RecommenderSettings,
    hybrid: ScorerWeights,
    window: int,
    registry: Any,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train the tower on the training split (filed in ``registry`` under the service's tower
    task); test figures of every model on the same users."""
    n = len(data.texts)
    users = list(data.test)
    held_both = set(data.test.values()) | set(data.validation.values())
    train_hist = histories(data, held_both)
    test_hist = histories(data, set(data.test.values()))
    net, card = train_movielens_tower(data, vectors, registry, settings.tower_task, True)
    log(f"tower trained: {card['metrics']}")
    validation = [(train_hist[u], data.events[data.validation[u]][1]) for u in users]

    # blend weights on the validation items (the validation model holds both items out)
    val_model = build_model(data, vectors, held_both, settings, window)
    val_tower = tower_scores(net, vectors, [train_hist[u] for u in users], TOWER.max_length, None)
    val_signals = [user_signals(val_model, val_model.users[u], n) for u in users]
    best = (-1.0, BLEND_GRID[0])
    for weights in BLEND_GRID:
        val_ranks = np.array(
            [
                rank_of(_blend(val_signals[i], val_tower[i], weights), np.array(train_hist[u]), t)
                for i, (u, (_, t)) in enumerate(zip(users, validation, strict=True))
            ]
        )
        ndcg = metrics(val_ranks, np.zeros((1, K), dtype=np.int64), n)["ndcg@10"]
        if ndcg > best[0]:
            best = (ndcg, weights)
    chosen = best[1]
    log(f"blend weights (validation NDCG@10 {best[0]}): {chosen}")
    del val_signals, val_tower

    # test: every model, the same users
    model = build_model(data, vectors, set(data.test.values()), settings, window)
    test_tower = tower_scores(net, vectors, [test_hist[u] for u in users], TOWER.max_length, None)
    ease_b = ease({u: r for u, r in test_hist.items()}, n)
    seen_before: dict[str, set[int]] = {u: set() for u in users}
    test_time = {u: data.events[data.test[u]][2] for u in users}
    for user, item, ts in data.rated:
        if user in seen_before and ts < test_time[user]:
            seen_before[user].add(item)
    hyb = np.array([hybrid.text, hybrid.popularity, hybrid.cooccurrence], dtype=np.float32)
    names = ["popularity", "text", "ease", "cooccurrence", "hybrid", "user_tower", "blend"]
    ranks = {name: np.zeros(len(users), dtype=np.int64) for name in names}
    seen_ranks = {name: np.zeros(len(users), dtype=np.int64) for name in names}
    tops = {name: np.zeros((len(users), K), dtype=np.int64) for name in names}
    for i, user in enumerate(users):
        target = data.events[data.test[user]][1]
        history = np.array(test_hist[user], dtype=np.int64)
        x = np.zeros(n, dtype=np.float32)
        x[history] = 1.0
        sig = user_signals(model, model.users[user], n)
        scores = {
            "popularity": sig[1],
            "text": sig[0],
            "ease": x @ ease_b,
            "cooccurrence": sig[2],
            "hybrid": hyb @ sig,
            "user_tower": test_tower[i],
            "blend": _blend(sig, test_tower[i], chosen),
        }
        everything = np.union1d(history, np.fromiter(seen_before[user] - {target}, np.int64))
        for name, row in scores.items():
            ranks[name][i] = rank_of(row, history, target)
            seen_ranks[name][i] = rank_of(row, everything, target)
            masked = row.astype(np.float64) - np.arange(n) * 1e-9
            masked[history] = -np.inf
            tops[name][i] = np.argpartition(-masked, K)[:K]
    del ease_b
    figures = {name: metrics(ranks[name], tops[name], n) for name in names}
    seen_figures = {
        name: metrics(seen_ranks[name], tops[name], n) for name in names
    }  # coverage from the unfiltered lists
    hits = {name: (ranks[name] < K).astype(np.float64) for name in names}
    return {
        "users": len(users),
        "tower": {
            "config": TOWER.model_dump(),
            "training": TRAINING.model_dump(),
            "train_seconds": card["training"]["seconds"],
            "epochs": len(card["training"]["history"]),
            "validation_hr@10": card["metrics"]["validation_hr@10"],
            "registry_card_test_metrics": {
                k: card["metrics"][k] for k in ("hr@10", "ndcg@10", "test_popularity_hr@10")
            },
        },
        "blend_weights": {
            "tower": chosen[0],
            "popularity": chosen[1],
            "cooccurrence": chosen[2],
            "tuned_on": "validation NDCG@10",
        },
        "figures": figures,
        "figures_seen_filter": seen_figures,
        "hr10_ci95": {name: bootstrap_ci(hits[name]) for name in names},
        "paired_difference_ci95": {
            "blend - hybrid": paired_ci(hits["blend"], hits["hybrid"]),
            "blend - ease": paired_ci(hits["blend"], hits["ease"]),
            "user_tower - ease": paired_ci(hits["user_tower"], hits["ease"]),
            "user_tower - popularity": paired_ci(hits["user_tower"], hits["popularity"]),
        },
    }


def evaluate_cold_items(
    data: MovieLens,
    vectors: np.ndarray,
    settings: RecommenderSettings,
    new_share: float = 0.2,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The cold-item protocol (see the module docstring)."""
    first: dict[int, float] = {}
    for _, item, ts in data.rated:
        first[item] = min(first.get(item, ts), ts)
    cutoff = float(np.quantile(list(first.values()), 1.0 - new_share))
    cold = np.array([first.get(i, np.inf) > cutoff for i in range(len(data.texts))])
    target: dict[str, tuple[int, float]] = {}
    for user, item, ts in data.events:
        if cold[item] and user not in target:
            target[user] = (item, ts)
    history: dict[str, list[int]] = {}
    for user, item, ts in data.events:  # liked known items before the user's test event
        if not cold[item] and (user not in target or ts < target[user][1]):
            history.setdefault(user, []).append(item)
    users = [u for u in target if len(history.get(u, [])) >= 3]
    warm = np.flatnonzero(~cold)
    row_of = {int(item): r for r, item in enumerate(warm)}
    sequences = [[row_of[i] for i in rows] for rows in history.values()]
    split = leave_last_out(sequences)
    fitted = fit_tower(vectors[warm], split.train, split.validation, TOWER, TRAINING, log)
    log(f"cold-item tower trained in {fitted.seconds:.0f}s on {len(warm)} known items")

    # the tower over the whole catalog: known items keep their id part, new ones text only
    import torch

    n = len(data.texts)
    net = fitted.net
    if net.ids is not None:
        ids = net.ids.weight.detach().clone()
        full = torch.zeros((n, ids.shape[1]))
        full[torch.from_numpy(warm)] = ids
        net.ids.weight = torch.nn.Parameter(full)
    scores = tower_scores(net, vectors, [history[u] for u in users], TOWER.max_length, ~cold)
    kept = {u: len(rows) for u, rows in history.items()}
    seen: dict[str, int] = {}
    held = set()
    for position, (user, item, _) in enumerate(data.events):
        if cold[item] or seen.get(user, 0) >= kept.get(user, 0):
            held.add(position)  # new items and each user's events after their test event
        else:
            seen[user] = seen.get(user, 0) + 1
    model = build_model(data, vectors, held, settings, settings.cooccurrence_window)
    ease_b = ease(history, n)
    names = ["popularity", "ease", "text", "user_tower"]
    ranks = {name: np.zeros(len(users), dtype=np.int64) for name in names}
    new_ranks = {name: np.zeros(len(users), dtype=np.int64) for name in names}
    new_items = np.flatnonzero(cold)
    for i, user in enumerate(users):
        own = np.array(history[user], dtype=np.int64)
        x = np.zeros(n, dtype=np.float32)
        x[own] = 1.0
        sig = user_signals(model, model.users[user], n)
        rows = {
            "popularity": sig[1],
            "ease": x @ ease_b,
            "text": sig[0],
            "user_tower": scores[i],
        }
        for name, row in rows.items():
            ranks[name][i] = rank_of(row, own, target[user][0])
            only_new = np.full(n, -np.inf)
            only_new[new_items] = row[new_items]
            new_ranks[name][i] = rank_of(only_new, own, target[user][0])
    empty = np.zeros((1, K), dtype=np.int64)
    return {
        "protocol": __doc__.split("Cold items: ", 1)[1].strip().replace("\n", " ")
        if __doc__
        else "",
        "new_share_of_items": new_share,
        "new_items": int(cold.sum()),
        "known_items": len(warm),
        "events": len(users),
        "tower_train_seconds": round(fitted.seconds, 1),
        "figures": {name: metrics(ranks[name], empty, n) for name in names},
        "figures_among_new_items_only": {
            name: metrics(new_ranks[name], empty, n) for name in names
        },
        "random_hr@10_among_new_items": round(K / max(int(cold.sum()), 1), 4),
        "hr10_ci95": {name: bootstrap_ci((ranks[name] < K).astype(float)) for name in names},
    }
