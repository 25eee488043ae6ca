"""MovieLens figures for the learnt user tower, side by side with popularity, EASE,
co-occurrence and the previous hybrid, paired on the same users (same targets as
:mod:`verticals.recommender.movielens`: each user's last liked rating is the test item, the one
before it the validation item), plus the seen filter and the cold-item protocol.

The tower reads every rating (a low one is context, as a view is in the service: something the
user saw) and is trained to predict the next liked item. Two figures per model: ``figures`` (the
classic protocol: only the user's earlier liked items are excluded from the ranking) and
``figures_seen_filter`` (what the service does: everything the user rated before the test item,
low ratings too, is excluded). As served, the blend re-ranks each user's nearest items of the
tower (``candidates`` of them); its weights are tuned that way on the validation items with the
seen filter; the test items are scored once.

Cold items: a cut-off time makes the items first rated after it (the newest fifth of the
catalog) new. New items are kept out of training: models learn from the ratings of the known
items only (every user, every time; a tested user's own history stops at the test event). Each
user with >= 3 liked known items before their first liked new item is tested on that item,
ranked over all items (and, separately, among the new items only), their earlier ratings
excluded. New items have no interactions: popularity and EASE cannot rank them; the text path
(the user's mean item text vector against item texts) and the tower (text-only vectors for new
items) find them through their text; "newest" ranks by release year (the catalog's newest items,
the service's cold-start fill), "random" is chance.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from verticals.core.config import SequenceConfig, TrainingConfig
from verticals.core.sequence import fit_tower, leave_last_out, members_of
from verticals.recommender.movielens import K, MovieLens, build_model, metrics
from verticals.recommender.scoring import user_signals
from verticals.recommender.settings import RecommenderSettings, ScorerWeights
from verticals.recommender.tower import TOWER_SETTINGS, TOWER_WEIGHT_DECAY

TOWER = SequenceConfig(**TOWER_SETTINGS)
TRAINING = TrainingConfig(
    epochs=30, batch_size=64, learning_rate=2e-3, weight_decay=TOWER_WEIGHT_DECAY, patience=5
)
BLEND_GRID = [
    (1.0, t, p, c)
    for t in (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    for p in (0.0, 0.1, 0.2, 0.4, 0.8, 1.6)
    for c in (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)
]
"""(tower, text, popularity, co-occurrence) weights tried on the validation items."""
NAMES = [
    "popularity",
    "text",
    "ease",
    "cooccurrence",
    "hybrid",
    "user_tower",
    "blend",
    "blend_all_items",
]
"""``blend``: as served, the blend re-ranks the tower's nearest items; ``blend_all_items``: the
same weights over every item."""


def rating_sequences(data: MovieLens) -> tuple[list[str], list[list[int]], list[list[bool]]]:
    """Every user's ratings in time order (ties by row order, as the liked events), with a
    flag per rating: liked (a target) or not (context)."""
    liked = {(user, item) for user, item, _ in data.events}
    order = sorted(range(len(data.rated)), key=lambda r: data.rated[r][2])
    per_user: dict[str, tuple[list[int], list[bool]]] = {}
    for r in order:
        user, item, _ = data.rated[r]
        items, flags = per_user.setdefault(user, ([], []))
        items.append(item)
        flags.append((user, item) in liked)
    users = list(per_user)
    return users, [per_user[u][0] for u in users], [per_user[u][1] for u in users]


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
    net: Any,
    text: np.ndarray,
    users: list[list[int]],
    max_length: int,
    known: np.ndarray | None = None,
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
    signals: np.ndarray, tower: np.ndarray, weights: tuple[float, float, float, float]
) -> np.ndarray:
    """The served blend (``tower.blend_scores``) over the whole catalog: ``signals`` (text,
    popularity, co-occurrence) of one user (3, n) or several (users, 3, n), ``tower`` (n) or
    (users, n)."""
    rel = np.exp(tower - tower.max(axis=-1, keepdims=True))
    return (
        weights[0] * rel
        + weights[1] * signals[..., 0, :]
        + weights[2] * signals[..., 1, :]
        + weights[3] * signals[..., 2, :]
    )


def outside_tower_top(tower: np.ndarray, depth: int) -> np.ndarray:
    """True outside each row's ``depth`` best tower scores: what the served blend never sees
    (the service re-ranks the tower's nearest ``depth`` items)."""
    if depth >= tower.shape[-1]:
        return np.zeros(tower.shape, dtype=bool)
    outside = np.ones(tower.shape, dtype=bool)
    best = np.argpartition(-tower, depth - 1, axis=-1)[..., :depth]
    np.put_along_axis(outside, best, False, axis=-1)
    return outside


def tune_blend(
    signals: np.ndarray,
    tower: np.ndarray,
    pairs: list[tuple[list[int], int]],
    grid: list[tuple[float, float, float, float]],
    depth: int,
) -> tuple[tuple[float, float, float, float], float]:
    """The grid's weights with the best NDCG@10 on ``pairs`` (history, target) when the blend
    re-ranks each user's ``depth`` best tower items, the user's history excluded (ranks as
    :func:`rank_of`); returns them and that NDCG@10."""
    n = signals.shape[-1]
    seen = outside_tower_top(tower, depth)
    for i, (history, _) in enumerate(pairs):
        seen[i, history] = True
    targets = np.array([target for _, target in pairs], dtype=np.int64)
    rows = np.arange(len(pairs))
    ties = np.arange(n) * 1e-9
    best: tuple[float, tuple[float, float, float, float]] = (-1.0, grid[0])
    for weights in grid:
        scores = _blend(signals, tower, weights).astype(np.float64) - ties
        scores[seen] = -np.inf
        at = scores[rows, targets]
        ranks = np.where(np.isfinite(at), (scores > at[:, None]).sum(axis=1), n)
        ndcg = metrics(ranks, np.zeros((1, K), dtype=np.int64), n)["ndcg@10"]
        if ndcg > best[0]:
            best = (ndcg, weights)
    return best[1], best[0]


def train_movielens_tower(
    data: MovieLens, vectors: np.ndarray, registry: Any, task: str, show_progress: bool
) -> tuple[Any, dict[str, Any]]:
    """Train the tower with the core's ``sequence`` kind on every user's ratings in time order
    (liked ones are the targets): its leave-last-out split is this protocol's (last liked =
    test, the one before = validation). Returns the net and its card."""
    from verticals.core.config import DataConfig, TrainConfig
    from verticals.core.sequence import Sequences, UserTower
    from verticals.core.training import run_training

    users, items, flags = rating_sequences(data)
    sequences = Sequences(vectors, [str(i) for i in range(len(vectors))], users, items, flags)
    config = TrainConfig(
        task=task, kind="sequence", data=DataConfig(), sequence=TOWER, training=TRAINING
    )
    outcome = run_training(config, registry, show_progress=show_progress, records=sequences)
    registry.promote(task, outcome.version, force=True)
    net = UserTower.from_directory(outcome.path).net
    return net, registry.card(task, outcome.version)


def _ranks(
    scores: dict[str, np.ndarray], liked_before: np.ndarray, rated_before: np.ndarray, target: int
) -> tuple[dict[str, int], dict[str, int], dict[str, np.ndarray]]:
    """Per model: the target's rank without the seen filter (earlier liked items excluded),
    with it (every earlier rating excluded), and the unfiltered top 10 (coverage)."""
    plain, seen, tops = {}, {}, {}
    n = len(next(iter(scores.values())))
    for name, row in scores.items():
        plain[name] = rank_of(row, liked_before, target)
        seen[name] = rank_of(row, rated_before, target)
        masked = row.astype(np.float64) - np.arange(n) * 1e-9
        masked[liked_before] = -np.inf
        tops[name] = np.argpartition(-masked, K)[:K]
    return plain, seen, tops


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
    task); test figures of every model on the same users, with and without the seen filter."""
    n = len(data.texts)
    users = list(data.test)
    all_users, sequences, flags = rating_sequences(data)
    split = leave_last_out(sequences, flags)
    tested = [u for u, f in zip(all_users, flags, strict=True) if sum(f) >= 3]
    validation = dict(zip(tested, split.validation, strict=True))
    test = dict(zip(tested, split.test, strict=True))
    for u in users:  # the tower's split is this protocol's, item for item
        if (test[u][1], validation[u][1]) != (
            data.events[data.test[u]][1],
            data.events[data.validation[u]][1],
        ):
            raise RuntimeError(f"user {u}: the rating order differs from the liked events'")
    held_both = set(data.test.values()) | set(data.validation.values())
    test_hist = histories(data, set(data.test.values()))
    net, card = train_movielens_tower(data, vectors, registry, settings.tower_task, True)
    log(f"tower trained: {card['metrics']}")

    # blend weights on the validation items, with the seen filter (the served behaviour)
    val_model = build_model(data, vectors, held_both, settings, window)
    val_tower = tower_scores(net, vectors, [validation[u][0] for u in users], TOWER.max_length)
    val_signals = np.stack([user_signals(val_model, val_model.users[u], n) for u in users])
    depth = settings.candidates
    chosen, best = tune_blend(
        val_signals, val_tower, [validation[u] for u in users], BLEND_GRID, depth
    )
    log(f"blend weights (validation NDCG@10 {best}, seen filter): {chosen}")
    del val_signals, val_tower

    # test: every model, the same users
    model = build_model(data, vectors, set(data.test.values()), settings, window)
    test_tower = tower_scores(net, vectors, [test[u][0] for u in users], TOWER.max_length)
    ease_b = ease(test_hist, n)
    hyb = np.array([hybrid.text, hybrid.popularity, hybrid.cooccurrence], dtype=np.float32)
    ranks = {name: np.zeros(len(users), dtype=np.int64) for name in NAMES}
    seen_ranks = {name: np.zeros(len(users), dtype=np.int64) for name in NAMES}
    tops = {name: np.zeros((len(users), K), dtype=np.int64) for name in NAMES}
    for i, user in enumerate(users):
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
            "blend": np.where(
                outside_tower_top(test_tower[i], depth), -np.inf, _blend(sig, test_tower[i], chosen)
            ),
            "blend_all_items": _blend(sig, test_tower[i], chosen),
        }
        rated = np.array(test[user][0], dtype=np.int64)
        plain, seen, top = _ranks(scores, history, rated, test[user][1])
        for name in NAMES:
            ranks[name][i], seen_ranks[name][i], tops[name][i] = plain[name], seen[name], top[name]
    del ease_b
    hits = {name: (ranks[name] < K).astype(np.float64) for name in NAMES}
    seen_hits = {name: (seen_ranks[name] < K).astype(np.float64) for name in NAMES}
    pairs = [
        ("blend", "hybrid"),
        ("blend", "ease"),
        ("blend", "user_tower"),
        ("blend", "blend_all_items"),
        ("user_tower", "ease"),
        ("user_tower", "popularity"),
    ]
    return {
        "users": len(users),
        "tower": {
            "config": TOWER.model_dump(),
            "training": TRAINING.model_dump(),
            "train_seconds": card["training"]["seconds"],
            "epochs": len(card["training"]["history"]),
            "validation_hr@10_seen_filter": card["metrics"]["validation_hr@10"],
            "registry_card_test_metrics_seen_filter": {
                k: card["metrics"][k] for k in ("hr@10", "ndcg@10", "test_popularity_hr@10")
            },
        },
        "blend_weights": {
            "tower": chosen[0],
            "text": chosen[1],
            "popularity": chosen[2],
            "cooccurrence": chosen[3],
            "tuned_on": "validation NDCG@10, seen filter, re-ranking the tower's nearest items",
            "candidates": depth,
        },
        "figures": {name: metrics(ranks[name], tops[name], n) for name in NAMES},
        "figures_seen_filter": {  # coverage from the unfiltered lists
            name: metrics(seen_ranks[name], tops[name], n) for name in NAMES
        },
        "hr10_ci95": {name: bootstrap_ci(hits[name]) for name in NAMES},
        "hr10_ci95_seen_filter": {name: bootstrap_ci(seen_hits[name]) for name in NAMES},
        "paired_difference_ci95": {f"{a} - {b}": paired_ci(hits[a], hits[b]) for a, b in pairs},
        "paired_difference_ci95_seen_filter": {
            f"{a} - {b}": paired_ci(seen_hits[a], seen_hits[b]) for a, b in pairs
        },
    }


def release_years(texts: list[str]) -> np.ndarray:
    """Each item's release year from its text ('Title (1995). Genres'), 0 when none."""
    out = np.zeros(len(texts), dtype=np.float64)
    for i, text in enumerate(texts):
        found = re.findall(r"\((\d{4})\)", text)
        out[i] = float(found[-1]) if found else 0.0
    return out


def evaluate_cold_items(
    data: MovieLens,
    vectors: np.ndarray,
    settings: RecommenderSettings,
    new_share: float = 0.2,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The cold-item protocol (see the module docstring)."""
    n = len(data.texts)
    first: dict[int, float] = {}
    for _, item, ts in data.rated:
        first[item] = min(first.get(item, ts), ts)
    cutoff = float(np.quantile(list(first.values()), 1.0 - new_share))
    cold = np.array([first.get(i, np.inf) > cutoff for i in range(n)])
    warm = np.flatnonzero(~cold)
    row_of = {int(item): r for r, item in enumerate(warm)}
    all_users, sequences, flags = rating_sequences(data)
    target: dict[str, int] = {}
    history: dict[str, list[int]] = {}  # every known item rated before the test event
    train_rows, train_flags = [], []
    for user, rows, marks in zip(all_users, sequences, flags, strict=True):
        stop = next((j for j, i in enumerate(rows) if cold[i] and marks[j]), len(rows))
        known = [(i, m) for i, m in zip(rows[:stop], marks[:stop], strict=True) if not cold[i]]
        if stop < len(rows) and sum(m for _, m in known) >= 3:
            target[user] = rows[stop]
            history[user] = [i for i, _ in known]
        else:  # not tested: every known item trains
            known = [(i, m) for i, m in zip(rows, marks, strict=True) if not cold[i]]
        train_rows.append([row_of[i] for i, _ in known])
        train_flags.append([m for _, m in known])
    users = list(target)
    split = leave_last_out(train_rows, train_flags)
    fitted = fit_tower(
        vectors[warm],
        split.train,
        split.validation,
        TOWER,
        TRAINING,
        log,
        split.train_positive,
    )
    log(f"cold-item tower trained in {fitted.seconds:.0f}s on {len(warm)} known items")

    # the tower over the whole catalog: known items keep their id part, new ones text only
    import torch

    net = fitted.net
    for member in members_of(net):
        if member.ids is not None:
            ids = member.ids.weight.detach().clone()
            full = torch.zeros((n, ids.shape[1]))
            full[torch.from_numpy(warm)] = ids
            member.ids.weight = torch.nn.Parameter(full)
    scores = tower_scores(net, vectors, [history[u] for u in users], TOWER.max_length, ~cold)
    # the interaction model: liked known items, each tested user's up to the test event
    liked_set = {(u, i) for u, i, _ in data.events}
    kept = {u: sum((u, i) in liked_set for i in history[u]) for u in users}
    seen: dict[str, int] = {}
    held = set()
    for position, (user, item, _) in enumerate(data.events):
        if cold[item] or (user in kept and seen.get(user, 0) >= kept[user]):
            held.add(position)
        else:
            seen[user] = seen.get(user, 0) + 1
    model = build_model(data, vectors, held, settings, settings.cooccurrence_window)
    liked_hist = {u: [i for i in history[u] if (u, i) in liked_set] for u in users}
    ease_b = ease(liked_hist, n)
    years = release_years(data.texts)
    names = ["popularity", "ease", "newest", "text", "user_tower"]
    ranks = {name: np.zeros(len(users), dtype=np.int64) for name in names}
    new_ranks = {name: np.zeros(len(users), dtype=np.int64) for name in names}
    new_items = np.flatnonzero(cold)
    for i, user in enumerate(users):
        own = np.array(history[user], dtype=np.int64)
        x = np.zeros(n, dtype=np.float32)
        x[liked_hist[user]] = 1.0
        sig = user_signals(model, model.users[user], n)
        model_scores = {
            "popularity": sig[1],
            "ease": x @ ease_b,
            "newest": years,
            "text": sig[0],
            "user_tower": scores[i],
        }
        for name, row in model_scores.items():
            ranks[name][i] = rank_of(row, own, target[user])
            only_new = np.full(n, -np.inf)
            only_new[new_items] = row[new_items]
            new_ranks[name][i] = rank_of(only_new, own, target[user])
    empty = np.zeros((1, K), dtype=np.int64)
    hits = {name: (ranks[name] < K).astype(float) for name in names}
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
        "random_hr@10": round(K / n, 4),
        "hr10_ci95": {name: bootstrap_ci(hits[name]) for name in names},
        "paired_difference_ci95": {
            "user_tower - text": paired_ci(hits["user_tower"], hits["text"]),
            "text - newest": paired_ci(hits["text"], hits["newest"]),
            "user_tower - newest": paired_ci(hits["user_tower"], hits["newest"]),
        },
    }
