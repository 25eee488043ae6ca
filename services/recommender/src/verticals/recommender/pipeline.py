"""The recommender engine: catalog, events and recommendations over the store, the FAISS index
and the interaction model. No web framework in here.

The FAISS index is a per-replica cache of the item vectors stored in the database (whole-catalog
scoring, user vectors and MMR read it in memory). Every catalog change bumps a version in its
transaction; on PostgreSQL a thread reads that version every ``catalog_refresh_s`` and applies
the keys other replicas changed since, so their items are recommended here within that time."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from verticals.core.vectors import VectorIndex
from verticals.recommender.catalog import Filters, ItemMeta
from verticals.recommender.model import InteractionModel
from verticals.recommender.schemas import EventIn, ItemIn
from verticals.recommender.scoring import Ranked, recommend_for_user, similar_items
from verticals.recommender.settings import RecommenderSettings, ScorerWeights
from verticals.recommender.store import Store, row_to_dict
from verticals.recommender.tower import TowerServing, load_tower

log = logging.getLogger("verticals.recommender")
ENCODE_BATCH = 512


class RecommenderError(ValueError):
    """Bad input; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def load_encoder(settings: RecommenderSettings, registry: Any = None) -> Any:
    from verticals.core.inference import Encoder

    return Encoder.from_registry(settings.encoder_task, registry=registry, fallback_to_base=True)


def assign_variant(user_id: str, share_b: float, salt: str) -> str:
    """A stable A/B assignment from a hash of the user id."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return "B" if int.from_bytes(digest[:4], "big") / 2**32 < share_b else "A"


class Recommender:
    def __init__(
        self,
        settings: RecommenderSettings,
        encoder: Any = None,
        encoder_factory: Callable[[RecommenderSettings], Any] = load_encoder,
        tower: Any = None,
    ) -> None:
        """``tower``: a user tower to serve (default: the promoted one, if any)."""
        self.settings = settings
        self.encoder = encoder if encoder is not None else encoder_factory(settings)
        self.store = Store(settings.sqlalchemy_url("recommender"))
        dim = self.encoder.dimension
        self.index = VectorIndex(
            dim, settings.exact_index_max_items, settings.ivf_nprobe, settings.faiss_threads
        )
        self.meta = ItemMeta()
        self.model = self._new_model()
        self.lock = threading.RLock()
        self.tower: TowerServing | None = None
        self.catalog_version = 0
        self.load()
        self.use_tower(tower if tower is not None else load_tower(settings))
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        if self.store.db.dialect == "postgresql" and settings.catalog_refresh_s > 0:
            self._refresher = threading.Thread(
                target=_refresh_loop,
                args=(weakref.ref(self), self._stop, settings.catalog_refresh_s),
                name="catalog-refresh",
                daemon=True,
            )
            self._refresher.start()

    def _new_model(self) -> InteractionModel:
        s = self.settings
        return InteractionModel(
            self.index.table,
            s.event_weights,
            s.user_half_life_hours,
            s.popularity_half_life_hours,
            s.cooccurrence_window,
        )

    @property
    def model_version(self) -> str:
        return str(self.encoder.version)

    # ---- start ---------------------------------------------------------------------------

    def load(self) -> None:
        """Rebuild the index and the interaction model from the database (no re-encoding,
        unless the stored vectors come from another encoder version)."""
        started = time.perf_counter()
        stale: list[int] = []
        self.catalog_version = self.store.catalog_version()  # before the items: none missed
        for rows in self.store.iter_items():
            keys = np.array([r[0] for r in rows], dtype=np.int64)
            vectors = np.stack([np.frombuffer(r[6], dtype=np.float32) for r in rows])
            self.index.table.set(keys, vectors)
            for key, item_id, title, category, price, in_stock, _, version in rows:
                self.meta.set(key, item_id, title, category, price, in_stock)
                if version != self.model_version:
                    stale.append(key)
        if stale:
            self._reencode(stale)
        self.index.rebuild()
        skipped = self._replay()
        log.info(
            "loaded",
            extra={
                "fields": {
                    "items": len(self.index),
                    "users": len(self.model.users),
                    "index": self.index.kind,
                    "reencoded": len(stale),
                    "skipped_events": skipped,
                    "seconds": round(time.perf_counter() - started, 2),
                }
            },
        )

    def _replay(self) -> int:
        """Rebuild the interaction model from the event log; returns how many stored events
        were skipped. A stored event never stops a start: one timed too far in the future
        (written by an older version) or one the model cannot apply is logged and skipped."""
        self.model = self._new_model()
        latest = time.time() + self.settings.max_event_skew_s
        skipped = 0
        for events in self.store.iter_events():
            for user_id, item_id, event_type, ts in events:
                key = self.meta.key_of.get(item_id)
                if key is None:
                    continue  # the item was deleted
                if not ts <= latest:
                    skipped += 1
                    log.warning(
                        "skipping stored event %s/%s at ts=%s: in the future", user_id, item_id, ts
                    )
                    continue
                try:
                    self.model.ingest(user_id, key, event_type, ts)
                except Exception:
                    skipped += 1
                    log.exception("skipping stored event %s/%s at ts=%s", user_id, item_id, ts)
        return skipped

    def use_tower(self, tower: Any) -> None:
        """Serve ``tower`` (None: the old scorer): its item vectors for the whole catalog, and
        each user's latest items from the event log."""
        if tower is None:
            self.tower = None
            return
        serving = TowerServing(tower, self.settings, self.index)
        keys = self.index.table.keys()
        for start in range(0, len(keys), 20_000):
            chunk = keys[start : start + 20_000]
            ids = [str(self.meta.ids[k]) for k in chunk.tolist()]
            serving.set_items(chunk, self.index.table.data[chunk], ids)
        # Loaded in chunks, an IVF index would be trained when the catalog first outgrew the
        # exact index (800 lists at 40k items instead of 1,264 at 100k, so every search scanned
        # about 60% more vectors than the text index's): train it once on the whole catalog.
        serving.index.rebuild()
        for events in self.store.iter_events():
            for user_id, item_id, _, _ in events:
                key = self.meta.key_of.get(item_id)
                if key is not None:
                    serving.observe(user_id, key)
        with self.lock:
            self.tower = serving

    def _reencode(self, keys: list[int]) -> None:
        log.info("re-encoding %d items for encoder %s", len(keys), self.model_version)
        with self.store.session() as session:
            texts = dict(self.store.item_texts(session))
        for start in range(0, len(keys), ENCODE_BATCH):
            chunk = keys[start : start + ENCODE_BATCH]
            vectors = self.encoder.encode([ItemIn(**_item_fields(texts[k])).text() for k in chunk])
            with self.store.session() as session:
                self.store.set_vectors(session, chunk, vectors, self.model_version)
            self.index.table.set(np.array(chunk, dtype=np.int64), vectors)

    # ---- catalog -------------------------------------------------------------------------

    def upsert_items(
        self, items: Sequence[ItemIn], vectors: np.ndarray | None = None
    ) -> tuple[int, int]:
        """Encode (unless unit ``vectors`` are given) and store; returns (created, updated).
        Duplicate ids reject the whole batch."""
        if len(items) > self.settings.max_batch:
            raise RecommenderError(
                f"batch of {len(items)} items is over the limit of {self.settings.max_batch}", 413
            )
        dupes = [i for i, n in Counter(it.id for it in items).items() if n > 1]
        if dupes:
            raise RecommenderError(f"duplicate item id(s) in the batch: {', '.join(dupes[:10])}")
        if not items:
            return 0, 0
        if vectors is None:
            vectors = self.encoder.encode([it.text() for it in items])
        payload = [it.model_dump() for it in items]
        with self.lock:
            with self.store.session() as session:
                keys, created = self.store.upsert_items(
                    session, payload, vectors, self.model_version
                )
                version = self.store.bump_catalog(session, keys.values())
            key_array = np.array([keys[it.id] for it in items], dtype=np.int64)
            self.index.upsert(key_array, vectors)
            if self.tower is not None:
                self.tower.set_items(key_array, vectors, [it.id for it in items])
            for it, key in zip(items, key_array, strict=True):
                self.meta.set(int(key), it.id, it.title, it.category, it.price, it.in_stock)
            self._applied(version)
        return created, len(items) - created

    def _applied(self, version: int) -> None:
        """A catalog change made here is in the cache; when it was the only one since the cache
        was read, the cache is at its version (else the refresh re-reads what it missed)."""
        if self.catalog_version == version - 1:
            self.catalog_version = version

    def refresh_catalog(self) -> int:
        """Apply the item changes made since the cache's catalog version (by any replica);
        returns how many keys were re-read."""
        latest = self.store.catalog_version()
        if latest == self.catalog_version:
            return 0
        keys = self.store.catalog_changes(self.catalog_version, latest)
        if keys is None:  # too far behind: the change log was pruned
            keys = sorted(set(self.meta.key_of.values()) | set(self.store_keys()))
        rows = self.store.items_by_key(keys)
        with self.lock:
            found = {int(r[0]) for r in rows}
            gone = np.array([k for k in keys if k not in found and self._known(k)], np.int64)
            if len(gone):
                self.index.remove(gone)
                for key in gone.tolist():
                    self.meta.remove(key)
                self.model.forget_items(gone.tolist())
                if self.tower is not None:
                    self.tower.remove_items(gone)
            if rows:
                key_array = np.array([r[0] for r in rows], dtype=np.int64)
                vectors = np.stack([np.frombuffer(r[6], dtype=np.float32) for r in rows])
                stale = [i for i, r in enumerate(rows) if r[7] != self.model_version]
                if stale:  # written by a replica on another encoder: ours, like at start
                    self._reencode([int(rows[i][0]) for i in stale])
                    vectors[stale] = self.index.table.data[key_array[stale]]
                self.index.upsert(key_array, vectors)
                if self.tower is not None:
                    self.tower.set_items(key_array, vectors, [str(r[1]) for r in rows])
                for key, item_id, title, category, price, in_stock, _, _ in rows:
                    self.meta.set(int(key), item_id, title, category, price, in_stock)
            self.catalog_version = max(self.catalog_version, latest)
        return len(keys)

    def _known(self, key: int) -> bool:
        return key < len(self.meta.present) and bool(self.meta.present[key])

    def store_keys(self) -> list[int]:
        return [int(r[0]) for rows in self.store.iter_items() for r in rows]

    def delete_items(self, item_ids: Sequence[str]) -> tuple[int, list[str]]:
        with self.lock:
            keys = {i: self.meta.key_of[i] for i in item_ids if i in self.meta.key_of}
            missing = [i for i in item_ids if i not in keys]
            if keys:
                with self.store.session() as session:
                    self.store.delete_items(session, keys.values())
                    version = self.store.bump_catalog(session, keys.values())
                self.index.remove(np.array(list(keys.values()), dtype=np.int64))
                for key in keys.values():
                    self.meta.remove(key)
                self.model.forget_items(keys.values())
                if self.tower is not None:
                    self.tower.remove_items(np.array(list(keys.values()), dtype=np.int64))
                self._applied(version)
        return len(keys), missing

    def get_item(self, item_id: str) -> dict[str, Any]:
        with self.store.session() as session:
            row = self.store.get_item(session, item_id)
            if row is None:
                raise RecommenderError(f"unknown item '{item_id}'", 404)
            return row_to_dict(row)

    def list_items(self, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        with self.store.session() as session:
            rows = self.store.list_items(session, offset, limit)
            return self.store.count_items(session), [row_to_dict(r) for r in rows]

    # ---- events --------------------------------------------------------------------------

    def ingest_events(self, events: Sequence[EventIn]) -> int:
        """Store and apply events; an unknown item rejects the whole batch (nothing stored)."""
        if len(events) > self.settings.max_batch:
            raise RecommenderError(
                f"batch of {len(events)} events is over the limit of {self.settings.max_batch}", 413
            )
        now = datetime.now(UTC).timestamp()
        skew = self.settings.max_event_skew_s
        for e in events:
            if e.timestamp is not None and e.timestamp.timestamp() > now + skew:
                raise RecommenderError(
                    f"event timestamp {e.timestamp.isoformat()} is more than {skew:g} s ahead "
                    f"of the server clock ({datetime.fromtimestamp(now, UTC).isoformat()}); "
                    "send the time the event happened, or none for the time of receipt"
                )
        with self.lock:
            unknown = sorted({e.item_id for e in events if e.item_id not in self.meta.key_of})
            if unknown:
                raise RecommenderError(f"unknown item id(s): {', '.join(unknown[:10])}", 404)
            rows: list[dict[str, Any]] = [
                {
                    "user_id": e.user_id,
                    "item_id": e.item_id,
                    "type": e.type,
                    "ts": e.timestamp.timestamp() if e.timestamp else now,
                }
                for e in events
            ]
            with self.store.session() as session:
                self.store.add_events(session, rows)
            # Committed: from here on the request succeeds. Should the in-memory update fail,
            # the model is rebuilt from the log (which holds these events) instead.
            try:
                for row in sorted(rows, key=lambda r: r["ts"]):
                    key = self.meta.key_of[row["item_id"]]
                    self.model.ingest(row["user_id"], key, row["type"], row["ts"])
                    if self.tower is not None:
                        self.tower.observe(row["user_id"], key)
            except Exception:
                log.exception("applying committed events failed; rebuilding from the log")
                self._replay()
                if self.tower is not None:
                    self.use_tower(self.tower.tower)
        return len(rows)

    # ---- recommendations -----------------------------------------------------------------

    def variant(self, user_id: str) -> tuple[str, ScorerWeights]:
        s = self.settings
        name = assign_variant(user_id, s.variant_b_share, s.ab_salt)
        return name, s.variant_b if name == "B" else s.variant_a

    def filters(
        self,
        categories: Sequence[str] = (),
        min_price: float | None = None,
        max_price: float | None = None,
        in_stock_only: bool = True,
        exclude_seen: bool | None = None,
    ) -> Filters:
        if min_price is not None and max_price is not None and min_price > max_price:
            raise RecommenderError(f"min_price {min_price} is above max_price {max_price}")
        return Filters(
            frozenset(c for c in categories if c),
            min_price,
            max_price,
            in_stock_only,
            self.settings.exclude_seen if exclude_seen is None else exclude_seen,
            self.settings.exclude_purchased,
        )

    def recommend(
        self, user_id: str, k: int, filters: Filters, query: str | None = None
    ) -> tuple[str, Ranked]:
        self._check_k(k)
        name, weights = self.variant(user_id)
        query_vector = self.encoder.encode([query])[0] if query else None
        with self.lock:
            ranked = self._tower_ranking(user_id, name, filters, k, query_vector is None)
            if ranked is not None:
                return name, ranked
            ranked = recommend_for_user(
                self.model,
                self.index,
                self.meta,
                self.model.users.get(user_id),
                weights,
                filters,
                k,
                self.settings.candidates,
                query_vector,
            )
        return name, ranked

    def _tower_ranking(
        self, user_id: str, variant: str, filters: Filters, k: int, no_query: bool
    ) -> Ranked | None:
        """The tower's ranking for variant A users with history (None: use the old scorer)."""
        user = self.model.users.get(user_id)
        if self.tower is None or variant != "A" or not no_query or user is None:
            return None
        excluded = (user.seen if filters.exclude_seen else set()) | (
            user.purchased if filters.exclude_purchased else set()
        )
        return self.tower.recommend(self.model, self.meta, user_id, user, filters, excluded, k)

    def similar(self, item_id: str, k: int, filters: Filters) -> Ranked:
        self._check_k(k)
        with self.lock:
            key = self.meta.key_of.get(item_id)
            if key is None:
                raise RecommenderError(f"unknown item '{item_id}'", 404)
            return similar_items(
                self.model,
                self.index,
                self.meta,
                key,
                self.settings.variant_a,
                filters,
                k,
                self.settings.candidates,
            )

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= self.settings.max_k:
            raise RecommenderError(f"k must be between 1 and {self.settings.max_k}, got {k}")

    def describe(self, ranked: Ranked) -> list[dict[str, Any]]:
        return [
            {
                "id": self.meta.ids[k],
                "title": self.meta.titles[k],
                "category": self.meta.categories[k],
                "price": None if np.isnan(self.meta.price[k]) else float(self.meta.price[k]),
                "in_stock": bool(self.meta.in_stock[k]),
                "score": round(float(s), 6),
            }
            for k, s in zip(ranked.keys.tolist(), ranked.scores.tolist(), strict=True)
        ]

    def stats(self) -> dict[str, Any]:
        return {
            "items": len(self.index),
            "users": len(self.model.users),
            "index": self.index.kind,
            "model_version": self.model_version,
            "tower": self.tower.version if self.tower is not None else None,
        }

    def close(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(10)
        self.store.db.dispose()


def _refresh_loop(ref: weakref.ref[Recommender], stop: threading.Event, every: float) -> None:
    """The catalog refresh thread; it ends with ``close()`` or when its engine is gone."""
    failing = False
    while not stop.wait(every):
        engine = ref()
        if engine is None:
            return
        try:
            engine.refresh_catalog()
            failing = False
        except Exception:  # the database away for a moment: try again at the next tick
            if not failing:
                log.warning("catalog refresh failed", exc_info=True)
            failing = True
        del engine


def _item_fields(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "updated_at"}
