"""The learnt user tower in the service: its item vectors in a FAISS index of their own, each
user's latest items, the blended ranking, and training a tower from the event log with a
validation gate.

A user's tower vector is computed from their latest items at the first request after an event
(in numpy, every member of the tower in one pass: about 0.3 ms on CPU), so an event changes the
next response; with it the tower's nearest items (the candidates the blend re-ranks) and their
scores are kept until the user's next event (or a catalog change), so a request searches no
index when nothing changed. New catalog items get text-only tower vectors."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from verticals.core.sequence import numpy_user_vector
from verticals.core.vectors import VectorIndex
from verticals.recommender.catalog import Filters, ItemMeta
from verticals.recommender.model import CoScores, InteractionModel, UserState
from verticals.recommender.scoring import EXHAUSTIVE_BELOW, Ranked, fill_newest
from verticals.recommender.settings import RecommenderSettings, TowerWeights

TOWER_SETTINGS: dict[str, Any] = {
    "dim": 128,
    "layers": 1,
    "heads": 2,
    "max_length": 50,
    "dropout": 0.2,
    "id_dropout": 0.1,
    "negatives": 0,
    "history_cap": 200,
    "members": 3,
}
"""The tower's shape: full softmax over all items, the latest 50 items read, each user's latest
200 trained on, three towers from three seeds served as their mean score (chosen on the
MovieLens validation split; each trains in minutes on 2 cores)."""
TOWER_WEIGHT_DECAY = 0.1
"""AdamW weight decay of the tower (chosen on the MovieLens validation split)."""


def tower_signal(scores: np.ndarray, best: float) -> np.ndarray:
    """Tower scores as a [0, 1] signal: exp(score - best score over the whole catalog), so the
    user's best item scores 1 whatever the candidates are."""
    return np.exp(np.minimum(scores - best, 0.0)).astype(np.float32)


@dataclass(frozen=True)
class UserCandidates:
    """What a user's tower ranking needs that only their events (or a catalog change) change:
    the tower vector, the tower's nearest items (sorted ``keys``) and those items' tower
    signal and text cosine."""

    vector: np.ndarray
    best: float
    """The best tower score over the catalog (the tower signal's 1)."""
    text_vector: np.ndarray | None
    keys: np.ndarray
    tower: np.ndarray
    text: np.ndarray | None


class TowerServing:
    """A promoted tower, its item index and each user's latest item keys (first touch order).

    Per user, what their ranking needs from the two indexes (``UserCandidates``) is computed
    once per event and kept for the ``tower_cache_users`` most recently served users; each
    request only scores what changes with other users' events (popular and co-occurring items,
    popularity, co-occurrence)."""

    def __init__(self, tower: Any, settings: RecommenderSettings, text_index: VectorIndex) -> None:
        import torch

        # One torch thread for the whole process: the tower's matrices are tiny, and with
        # several threads a loaded 2-core machine stalled some requests (user vector p99
        # 832 ms against 45 ms with one thread, p50 0.3-0.5 ms either way).
        torch.set_num_threads(1)
        self.tower = tower
        self.weights = settings.tower_weights
        self.n_candidates = settings.candidates
        self.index = VectorIndex(
            tower.dimension,
            settings.exact_index_max_items,
            settings.ivf_nprobe,
            settings.faiss_threads,
        )
        self.text_index = text_index
        """The catalog's text index (the engine's): its item vectors give the text cosine."""
        self.recent: dict[str, list[int]] = {}
        self.vectors: dict[str, np.ndarray] = {}
        """Each user's tower vector until their next event (or a catalog change)."""
        self.cache: OrderedDict[str, UserCandidates] = OrderedDict()
        """Each user's candidates until their next event (or a catalog change), least recently
        served first."""
        self.cache_size = settings.tower_cache_users
        self.max_length = int(tower.config.max_length)
        self.forward = numpy_user_vector(tower)

    @property
    def version(self) -> str:
        return str(self.tower.version)

    def set_items(self, keys: np.ndarray, text_vectors: np.ndarray, item_ids: list[str]) -> None:
        self.index.upsert(keys, self.tower.item_vectors(text_vectors, item_ids))
        self.vectors.clear()
        self.cache.clear()

    def remove_items(self, keys: np.ndarray) -> None:
        self.index.remove(keys)
        self.vectors.clear()
        self.cache.clear()

    def observe(self, user_id: str, key: int) -> None:
        """Record an event (an item already in the user's list keeps its place)."""
        self.vectors.pop(user_id, None)
        self.cache.pop(user_id, None)
        recent = self.recent.setdefault(user_id, [])
        if key not in recent[-4 * self.max_length :]:
            recent.append(key)
            if len(recent) > 8 * self.max_length:
                del recent[: -4 * self.max_length]

    def user_vector(self, user_id: str) -> np.ndarray | None:
        """The user's tower vector from their latest items (computed once per event; None: no
        usable history)."""
        cached = self.vectors.get(user_id)
        if cached is not None:
            return cached
        recent = self.recent.get(user_id)
        if not recent:
            return None
        keys = np.array(recent[-self.max_length :], dtype=np.int64)
        keys = keys[keys < len(self.index.table.present)]
        keys = keys[self.index.table.present[keys]]
        if not len(keys):
            return None
        vector = self.forward(self.index.table.data[keys])
        self.vectors[user_id] = vector
        return vector

    def candidates(self, user_id: str, user: UserState) -> UserCandidates | None:
        """The user's ``UserCandidates`` (cached until their next event); None when they have
        no usable history."""
        cached = self.cache.get(user_id)
        if cached is not None:
            self.cache.move_to_end(user_id)
            return cached
        vector = self.user_vector(user_id)
        if vector is None:
            return None
        found, found_scores = self.index.search(vector, self.n_candidates)
        best = float(found_scores[0]) if len(found_scores) else 0.0
        text_vector = user.vector() if self.weights.text else None
        keys = np.sort(found.astype(np.int64))
        entry = UserCandidates(
            vector,
            best,
            text_vector,
            keys,
            tower_signal(self.index.table.data[keys] @ vector, best),
            None if text_vector is None else text_cosine(self.text_index, keys, text_vector),
        )
        if self.cache_size:
            self.cache[user_id] = entry
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return entry

    def signals(
        self, keys: np.ndarray, cand: UserCandidates
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The tower signal and the text cosine (None: text not weighted) of ``keys``."""
        tower = tower_signal(self.index.table.data[keys] @ cand.vector, cand.best)
        if cand.text_vector is None:
            return tower, None
        return tower, text_cosine(self.text_index, keys, cand.text_vector)

    def recommend(
        self,
        model: InteractionModel,
        meta: ItemMeta,
        user_id: str,
        user: UserState,
        filters: Filters,
        excluded: set[int],
        k: int,
    ) -> Ranked | None:
        """The tower retrieves, the blend re-ranks: tower + text (the user's text vector) +
        popularity + co-occurrence over the tower's nearest items (every item of a small
        filtered category; the popular and co-occurring items join when the filters leave
        fewer than ``k``); None when the user has no usable history."""
        cand = self.candidates(user_id, user)
        if cand is None:
            return None
        cooc = model.cooccurring(model.user_seeds(user))
        present = self.index.table.present
        small = bool(filters.categories) and (
            meta.category_size(filters.categories) <= EXHAUSTIVE_BELOW
        )
        if small:
            keys = meta.all_keys()
            keys = keys[keys < len(present)]
            tower, text = self.signals(keys, cand)
        else:
            keys, tower, text = cand.keys, cand.tower, cand.text
        keep = allowed(meta, present, keys, filters, excluded)
        if not small and np.count_nonzero(keep) < k:  # the filters left too few: widen
            n = self.n_candidates
            extra = np.unique(np.concatenate([model.top_popular(n), cooc.top(n)]))
            extra = extra[extra < len(present)]
            extra = extra[~among(keys, extra)]
            extra_tower, extra_text = self.signals(extra, cand)
            keys = np.concatenate([keys, extra])
            tower = np.concatenate([tower, extra_tower])
            text = None if text is None else np.concatenate([text, extra_text])
            keep = allowed(meta, present, keys, filters, excluded)
        keys, tower = keys[keep], tower[keep]
        scores = blend_scores(
            self.weights, tower, model, keys, cooc, text=None if text is None else text[keep]
        )
        order = np.lexsort((keys, -scores))[:k]  # by score, ties by key
        ranked = Ranked(keys[order], scores[order].astype(np.float32), "personal")
        return fill_newest(meta, ranked, filters, excluded, k)


def allowed(
    meta: ItemMeta, present: np.ndarray, keys: np.ndarray, filters: Filters, excluded: set[int]
) -> np.ndarray:
    """Which of ``keys`` pass the filters, are in the catalog and are not ``excluded``."""
    keep = meta.mask(keys, filters) & present[keys]
    if excluded:
        keep &= ~among(np.sort(np.fromiter(excluded, np.int64, len(excluded))), keys)
    return keep


def among(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` are in ``sorted_keys`` (ascending): one binary search each."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.asarray(sorted_keys[at] == keys)


def text_cosine(index: VectorIndex, keys: np.ndarray, text_vector: np.ndarray) -> np.ndarray:
    """The text signal of ``keys``: their cosine with the user's text vector, clipped at 0."""
    return np.clip(index.table.data[keys] @ text_vector, 0.0, None)


def blend_scores(
    weights: TowerWeights,
    tower: np.ndarray,
    model: InteractionModel,
    keys: np.ndarray,
    cooc: CoScores,
    text_vector: np.ndarray | None = None,
    text: np.ndarray | None = None,
) -> np.ndarray:
    """tower signal + text cosine + popularity + co-occurrence (each in [0, 1], weighted);
    ``text``: the text signal of ``keys`` when already known (else from ``text_vector``)."""
    out = weights.tower * tower + weights.popularity * model.popularity_of(keys)
    if text is None and text_vector is not None:
        text = np.clip(model.vectors.data[keys] @ text_vector, 0.0, None)
    if text is not None and weights.text:
        out = out + weights.text * text
    if cooc and weights.cooccurrence:
        top = float(cooc.values.max())
        if top > 0:
            out = out + weights.cooccurrence * (cooc.lookup(keys) / top).astype(np.float32)
    return np.asarray(out, dtype=np.float32)


def load_tower(settings: RecommenderSettings, registry: Any = None) -> Any:
    """The promoted user tower, or None when none was promoted (the old scorer serves)."""
    from verticals.core.registry import ModelRegistry
    from verticals.core.sequence import UserTower

    registry = registry or ModelRegistry.default()
    if registry.current_version(settings.tower_task) is None:
        return None
    return UserTower.from_registry(settings.tower_task, registry)


# ---- training from the event log ------------------------------------------------------------


def log_as_sequences(settings: RecommenderSettings) -> Any:
    """The event log as the core's sequence data: stored item text vectors (no re-encoding)
    and each user's items in first-touch order; an item is a target (positive) when the user
    had an event of a ``tower_target_events`` type on it, else context (a view)."""
    from verticals.core.sequence import Sequences
    from verticals.recommender.store import Store

    store = Store(settings.sqlalchemy_url("recommender"))
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    for rows in store.iter_items():
        for row in rows:
            ids.append(row[1])
            vectors.append(np.frombuffer(row[6], dtype=np.float32))
    row_of = {item_id: i for i, item_id in enumerate(ids)}
    targets = set(settings.tower_target_events)
    per_user: dict[str, list[int]] = {}
    flags: dict[str, list[bool]] = {}
    place: dict[tuple[str, int], int] = {}
    for batch in store.iter_events():
        for user, item_id, event_type, _ in batch:
            at = row_of.get(item_id)
            if at is None:
                continue
            if (user, at) not in place:
                place[(user, at)] = len(per_user.setdefault(user, []))
                per_user[user].append(at)
                flags.setdefault(user, []).append(False)
            if event_type in targets:
                flags[user][place[(user, at)]] = True
    store.db.dispose()
    dim = vectors[0].shape[0] if vectors else 1
    matrix = np.stack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
    users = list(per_user)
    return Sequences(matrix, ids, users, [per_user[u] for u in users], [flags[u] for u in users])


def train_tower_from_log(
    settings: RecommenderSettings,
    epochs: int = 30,
    registry: Any = None,
    log: Callable[[str], None] = print,
    sequence: dict[str, Any] | None = None,
    learning_rate: float = 2e-3,
) -> dict[str, Any]:
    """Train a tower on the event log with the core; promote it only if its validation HR@10
    beats popularity's and the current tower's on the same users."""
    from verticals.core.config import DataConfig, SequenceConfig, TrainConfig, TrainingConfig
    from verticals.core.registry import ModelRegistry
    from verticals.core.sequence import score_directory
    from verticals.core.training import TrainOutcome, train_and_gate

    data = log_as_sequences(settings)
    users = sum(sum(marks) >= 3 for marks in data.flags())
    if users < 5:
        return {"promoted": False, "reason": f"only {users} users with >= 3 target events"}
    registry = registry or ModelRegistry.default()
    task = settings.tower_task
    config = TrainConfig(
        task=task,
        kind="sequence",
        data=DataConfig(),
        sequence=SequenceConfig(**{**TOWER_SETTINGS, **(sequence or {})}),
        training=TrainingConfig(
            epochs=epochs,
            batch_size=64,
            learning_rate=learning_rate,
            weight_decay=TOWER_WEIGHT_DECAY,
            patience=5,
        ),
    )
    current_version = registry.current_version(task)

    def score_current(outcome: TrainOutcome) -> dict[str, Any]:
        if current_version is None:
            return {"version": None, "validation_hr@10": None}
        folder = registry.path(task, current_version)
        scored = score_directory(folder, outcome.path / "data", "validation")
        return {"version": current_version, "validation_hr@10": scored["metrics"]["hr@10"]}

    def score_candidate(outcome: TrainOutcome) -> dict[str, Any]:
        metrics = outcome.metrics
        return {
            "validation_hr@10": metrics["validation_hr@10"],
            "popularity_validation_hr@10": metrics["validation_popularity_hr@10"],
        }

    def better(current: dict[str, Any], candidate: dict[str, Any]) -> bool:
        hr = candidate["validation_hr@10"]
        return hr > candidate["popularity_validation_hr@10"] and (
            current["validation_hr@10"] is None or hr >= current["validation_hr@10"]
        )

    gated = train_and_gate(config, score_current, score_candidate, better, registry, records=data)
    outcome = gated.outcome
    card = registry.card(task, outcome.version)
    gate = {
        **gated.candidate,
        "current": current_version,
        "current_validation_hr@10": gated.current["validation_hr@10"],
        "promoted": gated.promoted,
    }
    log(f"tower v{outcome.version}: {gate}")
    return {
        "version": outcome.version,
        "users": len(data.users),
        "metrics": card["metrics"],
        **gate,
        "note": "restart the service to serve a promoted tower",
    }
