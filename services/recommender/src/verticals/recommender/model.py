"""What the events teach, updated one event at a time: decayed popularity, item-to-item
co-occurrence and each user's recency-decayed, event-weighted mean of item vectors.

The same class serves live traffic and the offline MovieLens evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from verticals.core.vectors import VectorTable

TOP_REFRESH_S = 1.0
"""Trending lists may lag the event stream by this much (recomputing per request is costly)."""
POSITION_DECAY = 0.8
"""Weight of the user's n-th most recent item in co-occurrence scores: POSITION_DECAY ** n."""


def _tau(half_life_hours: float) -> float:
    """Seconds for a weight to fall by e; infinite (no decay) for a half-life of 0."""
    return half_life_hours * 3600.0 / math.log(2) if half_life_hours > 0 else math.inf


@dataclass(frozen=True)
class CoScores:
    """Co-occurrence scores: sorted keys and their values."""

    keys: np.ndarray
    values: np.ndarray

    @classmethod
    def empty(cls) -> CoScores:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))

    def __bool__(self) -> bool:
        return bool(len(self.keys))

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Values of ``keys`` (0 where absent)."""
        out = np.zeros(len(keys), dtype=np.float64)
        if len(self.keys) and len(keys):
            idx = np.clip(np.searchsorted(self.keys, keys), 0, len(self.keys) - 1)
            hit = self.keys[idx] == keys
            out[hit] = self.values[idx[hit]]
        return out

    def top(self, n: int) -> np.ndarray:
        if len(self.keys) <= n:
            return self.keys
        return self.keys[np.argpartition(-self.values, n - 1)[:n]]


@dataclass
class UserState:
    vector_sum: np.ndarray | None = None
    weight: float = 0.0
    t_ref: float = -math.inf
    recent: dict[int, None] = field(default_factory=dict)
    """The last ``window`` distinct item keys, most recent last: an ordered set (a dict's
    insertion order) where a revisited item moves to the end and the oldest drops out."""
    seen: set[int] = field(default_factory=set)
    """Every item the user touched (``recent`` is its most recent tail)."""
    purchased: set[int] = field(default_factory=set)
    events: int = 0

    def vector(self) -> np.ndarray | None:
        if self.vector_sum is None:
            return None
        norm = float(np.linalg.norm(self.vector_sum))
        return None if norm < 1e-9 else (self.vector_sum / norm).astype(np.float32)


class InteractionModel:
    def __init__(
        self,
        vectors: VectorTable,
        event_weights: Mapping[str, float],
        user_half_life_hours: float = 72.0,
        popularity_half_life_hours: float = 168.0,
        window: int = 10,
    ) -> None:
        self.vectors = vectors
        self.event_weights = dict(event_weights)
        self.user_tau = _tau(user_half_life_hours)
        self.pop_tau = _tau(popularity_half_life_hours)
        self.window = window
        self.users: dict[str, UserState] = {}
        self.popularity = np.zeros(1024, dtype=np.float64)
        """Decayed, event-weighted counts, scaled by exp((t - pop_t0) / tau)."""
        self.pop_t0: float | None = None
        self._pop_max: float | None = None
        """The largest popularity (None: recompute; every change resets it)."""
        self.item_users = np.zeros(1024, dtype=np.float64)
        """Distinct users per item (normalises co-occurrence)."""
        self.cooc: dict[int, dict[int, float]] = {}
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        """Per item, its co-occurrence row as arrays (rebuilt after the row changes)."""
        self._top: tuple[float, int, np.ndarray] | None = None
        self._top_dirty = False

    def _grow(self, key: int) -> None:
        if key >= len(self.popularity):
            size = max(key + 1, 2 * len(self.popularity))
            self.popularity = np.resize(self.popularity, size)
            self.popularity[len(self.item_users) :] = 0.0
            self.item_users = np.concatenate(
                [self.item_users, np.zeros(size - len(self.item_users))]
            )

    def _bump_popularity(self, key: int, weight: float, ts: float) -> None:
        self._top_dirty = True
        self._pop_max = None
        if math.isinf(self.pop_tau):
            self.popularity[key] += weight
            return
        if self.pop_t0 is None:
            self.pop_t0 = ts
        exponent = (ts - self.pop_t0) / self.pop_tau
        if exponent > 50:  # rescale before exp overflows
            self.popularity *= math.exp(-exponent)
            self.pop_t0, exponent = ts, 0.0
        self.popularity[key] += weight * math.exp(exponent)
        self._top_dirty = True

    def ingest(self, user_id: str, key: int, event_type: str, ts: float) -> None:
        """Apply one event (events may arrive slightly out of order)."""
        weight = self.event_weights.get(event_type, 1.0)
        self._grow(key)
        self._bump_popularity(key, weight, ts)
        user = self.users.get(user_id)
        if user is None:
            user = self.users[user_id] = UserState()
        user.events += 1
        vector = self.vectors.data[key] if key < len(self.vectors.data) else None
        if vector is not None and self.vectors.present[key]:
            if user.vector_sum is None:
                user.vector_sum, user.weight, user.t_ref = (
                    weight * vector.astype(np.float64),
                    weight,
                    ts,
                )
            elif ts >= user.t_ref:
                decay = math.exp(-(ts - user.t_ref) / self.user_tau)
                user.vector_sum = user.vector_sum * decay + weight * vector
                user.weight = user.weight * decay + weight
                user.t_ref = ts
            else:
                late = weight * math.exp(-(user.t_ref - ts) / self.user_tau)
                user.vector_sum = user.vector_sum + late * vector
                user.weight += late
        if event_type == "purchase":
            user.purchased.add(key)
        if key not in user.seen:
            user.seen.add(key)
            self.item_users[key] += 1
            for other in user.recent:
                row = self.cooc.setdefault(other, {})
                row[key] = row.get(key, 0.0) + 1.0
                row = self.cooc.setdefault(key, {})
                row[other] = row.get(other, 0.0) + 1.0
                self._arrays.pop(other, None)
                self._arrays.pop(key, None)
        self._touch(user, key)

    def _touch(self, user: UserState, key: int) -> None:
        """Make ``key`` the user's most recent item (an item dropped from ``recent`` long ago
        comes back too), keeping at most ``window`` items."""
        user.recent.pop(key, None)
        user.recent[key] = None
        while len(user.recent) > self.window:
            del user.recent[next(iter(user.recent))]

    def forget_items(self, keys: Iterable[int]) -> None:
        """Drop deleted items from co-occurrence and popularity (keys are never reused)."""
        for key in keys:
            self._arrays.pop(key, None)
            for other in self.cooc.pop(key, {}):
                self.cooc.get(other, {}).pop(key, None)
                self._arrays.pop(other, None)
            if key < len(self.popularity):
                self.popularity[key] = 0.0
                self._pop_max = None

    # ---- signals, each scaled to [0, 1] --------------------------------------------------

    def popularity_of(self, keys: np.ndarray) -> np.ndarray:
        if self._pop_max is None:
            self._pop_max = float(self.popularity.max()) if len(self.popularity) else 0.0
        top = self._pop_max
        if top <= 0:
            return np.zeros(len(keys), dtype=np.float32)
        pop = np.zeros(len(keys), dtype=np.float64)
        inside = keys < len(self.popularity)
        pop[inside] = self.popularity[keys[inside]]
        return (pop / top).astype(np.float32)

    def top_popular(self, n: int) -> np.ndarray:
        """The ``n`` most popular keys; cached, refreshed at most every TOP_REFRESH_S seconds."""
        now = time.monotonic()
        fresh = self._top is not None and (
            not self._top_dirty or (now - self._top[0] < TOP_REFRESH_S and len(self._top[2]) > 0)
        )  # an empty list (no events yet) is recomputed as soon as events arrive
        if self._top is not None and fresh and n <= self._top[1]:
            return self._top[2][:n]
        self._top = (now, n, self._top_popular(n))
        self._top_dirty = False
        return self._top[2]

    def _top_popular(self, n: int) -> np.ndarray:
        n = min(n, int((self.popularity > 0).sum()))
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        top = np.argpartition(-self.popularity, n - 1)[:n]
        return top[np.argsort(-self.popularity[top])].astype(np.int64)

    def _neighbours(self, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
        cached = self._arrays.get(seed)
        if cached is None:
            neighbours = self.cooc.get(seed)
            if not neighbours:
                return None
            cached = (
                np.fromiter(neighbours.keys(), np.int64, len(neighbours)),
                np.fromiter(neighbours.values(), np.float64, len(neighbours)),
            )
            self._arrays[seed] = cached
        return cached

    def cooccurring(self, seeds: list[int]) -> CoScores:
        """Co-occurrence with ``seeds`` (most recent last), cosine-normalised, position-decayed."""
        keys, values = [], []
        for position, seed in enumerate(reversed(seeds)):
            found = self._neighbours(seed)
            if found is None:
                continue
            decay = POSITION_DECAY**position / math.sqrt(max(self.item_users[seed], 1.0))
            keys.append(found[0])
            values.append(found[1] * decay)
        if not keys:
            return CoScores.empty()
        all_keys = np.concatenate(keys)
        all_values = np.concatenate(values) / np.sqrt(np.maximum(self.item_users[all_keys], 1.0))
        unique, inverse = np.unique(all_keys, return_inverse=True)
        return CoScores(unique, np.bincount(inverse, weights=all_values, minlength=len(unique)))

    def user_seeds(self, user: UserState) -> list[int]:
        return list(user.recent)
