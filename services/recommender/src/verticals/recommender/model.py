"""What the events teach, updated one event at a time: decayed popularity, item-to-item
co-occurrence and each user's recency-decayed, event-weighted mean of item vectors.

The same class serves live traffic and the offline MovieLens evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from verticals.recommender.index import VectorTable

POSITION_DECAY = 0.8
"""Weight of the user's n-th most recent item in co-occurrence scores: POSITION_DECAY ** n."""


def _tau(half_life_hours: float) -> float:
    """Seconds for a weight to fall by e; infinite (no decay) for a half-life of 0."""
    return half_life_hours * 3600.0 / math.log(2) if half_life_hours > 0 else math.inf


@dataclass
class UserState:
    vector_sum: np.ndarray | None = None
    weight: float = 0.0
    t_ref: float = -math.inf
    recent: list[int] = field(default_factory=list)
    """Last distinct item keys, most recent last."""
    seen: set[int] = field(default_factory=set)
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
        self.item_users = np.zeros(1024, dtype=np.float64)
        """Distinct users per item (normalises co-occurrence)."""
        self.cooc: dict[int, dict[int, float]] = {}

    def _grow(self, key: int) -> None:
        if key >= len(self.popularity):
            size = max(key + 1, 2 * len(self.popularity))
            self.popularity = np.resize(self.popularity, size)
            self.popularity[len(self.item_users) :] = 0.0
            self.item_users = np.concatenate(
                [self.item_users, np.zeros(size - len(self.item_users))]
            )

    def _bump_popularity(self, key: int, weight: float, ts: float) -> None:
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
            for other in user.recent[-self.window :]:
                self.cooc.setdefault(other, {})
                self.cooc[other][key] = self.cooc[other].get(key, 0.0) + 1.0
                self.cooc.setdefault(key, {})
                self.cooc[key][other] = self.cooc[key].get(other, 0.0) + 1.0
            user.recent.append(key)
            if len(user.recent) > 4 * self.window:
                del user.recent[: -self.window]
        elif user.recent and user.recent[-1] != key:
            user.recent.remove(key)
            user.recent.append(key)

    def ingest_many(self, events: Iterable[tuple[str, int, str, float]]) -> None:
        for user_id, key, event_type, ts in events:
            self.ingest(user_id, key, event_type, ts)

    def forget_items(self, keys: Iterable[int]) -> None:
        """Drop deleted items from co-occurrence and popularity (keys are never reused)."""
        for key in keys:
            for other in self.cooc.pop(key, {}):
                self.cooc.get(other, {}).pop(key, None)
            if key < len(self.popularity):
                self.popularity[key] = 0.0

    # ---- signals, each scaled to [0, 1] --------------------------------------------------

    def popularity_of(self, keys: np.ndarray) -> np.ndarray:
        top = float(self.popularity.max()) if len(self.popularity) else 0.0
        if top <= 0:
            return np.zeros(len(keys), dtype=np.float32)
        pop = np.zeros(len(keys), dtype=np.float64)
        inside = keys < len(self.popularity)
        pop[inside] = self.popularity[keys[inside]]
        return (pop / top).astype(np.float32)

    def top_popular(self, n: int) -> np.ndarray:
        n = min(n, int((self.popularity > 0).sum()))
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        top = np.argpartition(-self.popularity, n - 1)[:n]
        return top[np.argsort(-self.popularity[top])].astype(np.int64)

    def cooccurring(self, seeds: list[int]) -> dict[int, float]:
        """Co-occurrence with ``seeds`` (most recent last), cosine-normalised, position-decayed."""
        scores: dict[int, float] = {}
        for position, seed in enumerate(reversed(seeds)):
            neighbours = self.cooc.get(seed)
            if not neighbours:
                continue
            decay = POSITION_DECAY**position / math.sqrt(max(self.item_users[seed], 1.0))
            for other, count in neighbours.items():
                scores[other] = scores.get(other, 0.0) + decay * count / math.sqrt(
                    max(self.item_users[other], 1.0)
                )
        return scores

    def user_seeds(self, user: UserState) -> list[int]:
        return user.recent[-self.window :]
