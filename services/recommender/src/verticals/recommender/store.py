"""Tables and queries: the catalog (with item vectors) and the event log."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Integer,
    LargeBinary,
    String,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from verticals.serving.database import Base, Database, UTCDateTime, insert_for


class RecBase(Base):
    __abstract__ = True


class ItemRow(RecBase):
    __tablename__ = "rec_items"

    key: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """Internal integer id: the FAISS id and the row of the in-memory vector table."""
    item_id: Mapped[str] = mapped_column(String(128), unique=True, index=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(200), default="", index=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    price: Mapped[float | None] = mapped_column(Float, nullable=True)
    in_stock: Mapped[bool] = mapped_column(Boolean, default=True)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    """float32 bytes of the unit item vector (so the index is rebuilt from the database)."""
    encoder_version: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EventRow(RecBase):
    __tablename__ = "rec_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    item_id: Mapped[str] = mapped_column(String(128), index=True)
    type: Mapped[str] = mapped_column(String(20))
    ts: Mapped[float] = mapped_column(Float, index=True)
    """Event time, seconds since the epoch (UTC)."""


class CatalogVersion(RecBase):
    """The catalog's version (one row): every transaction that changes items bumps it, which
    also serialises catalog writers, so versions commit in order."""

    __tablename__ = "rec_catalog_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class CatalogChange(RecBase):
    """The item keys each catalog version changed (upserted or deleted): a replica that has
    version v re-reads only the keys of the versions after it."""

    __tablename__ = "rec_catalog_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(BigInteger, index=True)
    item_key: Mapped[int] = mapped_column(Integer)


CHANGES_KEPT = 100_000
"""Catalog versions whose changes are kept; a replica further behind reloads the catalog."""
ITEM_FIELDS = ("title", "description", "category", "tags", "price", "in_stock", "attributes")
WRITTEN = ("vector", "encoder_version", "updated_at")


ITEM_COLUMNS = (
    ItemRow.key,
    ItemRow.item_id,
    ItemRow.title,
    ItemRow.category,
    ItemRow.price,
    ItemRow.in_stock,
    ItemRow.vector,
    ItemRow.encoder_version,
)
"""What the scorer loads of an item (the tuples of ``items_by_key`` and ``iter_items``)."""


class Store:
    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.db.create_all(RecBase)

    def session(self) -> Any:
        return self.db.session()

    # ---- items ---------------------------------------------------------------------------

    def keys_for(self, session: Session, item_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(item_ids), 500):
            chunk = list(item_ids[start : start + 500])
            rows = session.execute(
                select(ItemRow.item_id, ItemRow.key).where(ItemRow.item_id.in_(chunk))
            )
            found.update({r[0]: r[1] for r in rows})
        return found

    def upsert_items(
        self, session: Session, items: Sequence[dict[str, Any]], vectors: np.ndarray, version: str
    ) -> tuple[dict[str, int], int]:
        """Insert or update in one ``INSERT ... ON CONFLICT (item_id) DO UPDATE`` (replicas
        writing the same ids at once both succeed); returns every item's key and how many
        were new."""
        now = datetime.now(UTC)
        existing = self.keys_for(session, [i["id"] for i in items])
        rows = [
            {
                "item_id": item["id"],
                **{f: item[f] for f in ITEM_FIELDS},
                "vector": np.asarray(vec, dtype=np.float32).tobytes(),
                "encoder_version": version,
                "updated_at": now,
            }
            for item, vec in zip(items, vectors, strict=True)
        ]
        if not rows:
            return {}, 0
        stmt = insert_for(session, ItemRow)
        stmt = stmt.on_conflict_do_update(
            index_elements=["item_id"],
            set_={c: stmt.excluded[c] for c in (*ITEM_FIELDS, *WRITTEN)},
        )
        result = session.execute(stmt.returning(ItemRow.item_id, ItemRow.key), rows)
        keys = {item_id: key for item_id, key in result}
        return keys, sum(1 for i in items if i["id"] not in existing)

    def delete_items(self, session: Session, keys: Iterable[int]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), 500):
            session.execute(delete(ItemRow).where(ItemRow.key.in_(keys[start : start + 500])))

    # ---- catalog versions ------------------------------------------------------------------

    def bump_catalog(self, session: Session, keys: Iterable[int]) -> int:
        """The next catalog version, with the item keys it changed, in ``session``'s
        transaction (whose row lock orders concurrent writers)."""
        stmt = insert_for(session, CatalogVersion)
        session.execute(
            stmt.values(id=1, version=1).on_conflict_do_update(
                index_elements=["id"], set_={"version": CatalogVersion.version + 1}
            )
        )
        version = int(session.execute(select(CatalogVersion.version)).scalar_one())
        rows = [{"version": version, "item_key": int(k)} for k in keys]
        if rows:
            session.execute(insert(CatalogChange), rows)
        if version % 1000 == 0:
            session.execute(
                delete(CatalogChange).where(CatalogChange.version <= version - CHANGES_KEPT)
            )
        return version

    def catalog_version(self) -> int:
        with self.db.engine.connect() as conn:
            found = conn.execute(select(CatalogVersion.version)).scalar()
        return int(found or 0)

    def catalog_changes(self, after: int, upto: int) -> list[int] | None:
        """Keys changed by versions ``after`` < v <= ``upto``; None when some of those
        versions' changes were pruned (reload everything)."""
        with self.db.engine.connect() as conn:
            oldest = conn.execute(select(func.min(CatalogChange.version))).scalar()
            if oldest is None or oldest > after + 1:
                return None
            keys = conn.execute(
                select(CatalogChange.item_key)
                .where(CatalogChange.version > after, CatalogChange.version <= upto)
                .distinct()
            ).scalars()
            return [int(k) for k in keys]

    def items_by_key(self, keys: Sequence[int]) -> list[tuple]:
        """(key, item_id, title, category, price, in_stock, vector, version) of the keys that
        still exist."""
        out: list[tuple] = []
        with self.session() as session:
            for start in range(0, len(keys), 500):
                rows = session.execute(
                    select(*ITEM_COLUMNS).where(ItemRow.key.in_(list(keys[start : start + 500])))
                ).all()
                out += [tuple(r) for r in rows]
        return out

    def get_item(self, session: Session, item_id: str) -> ItemRow | None:
        return session.execute(
            select(ItemRow).where(ItemRow.item_id == item_id)
        ).scalar_one_or_none()

    def list_items(self, session: Session, offset: int, limit: int) -> list[ItemRow]:
        query = select(ItemRow).order_by(ItemRow.key).offset(offset).limit(limit)
        return list(session.execute(query).scalars())

    def count_items(self, session: Session) -> int:
        return int(session.execute(select(func.count(ItemRow.key))).scalar_one())

    def iter_items(self, batch: int = 5000) -> Iterator[list[tuple]]:
        """Every item as (key, item_id, title, category, price, in_stock, vector, version)."""
        last = 0
        while True:
            with self.session() as session:
                rows = session.execute(
                    select(*ITEM_COLUMNS)
                    .where(ItemRow.key > last)
                    .order_by(ItemRow.key)
                    .limit(batch)
                ).all()
            if not rows:
                return
            yield [tuple(r) for r in rows]
            last = rows[-1][0]

    def item_texts(self, session: Session) -> list[tuple[int, dict[str, Any]]]:
        rows = session.execute(select(ItemRow)).scalars()
        return [(r.key, row_to_dict(r)) for r in rows]

    def set_vectors(
        self, session: Session, keys: Sequence[int], vectors: np.ndarray, version: str
    ) -> None:
        session.execute(
            update(ItemRow),
            [
                {
                    "key": k,
                    "vector": np.asarray(v, np.float32).tobytes(),
                    "encoder_version": version,
                }
                for k, v in zip(keys, vectors, strict=True)
            ],
        )

    # ---- events --------------------------------------------------------------------------

    def add_events(self, session: Session, events: Sequence[dict[str, Any]]) -> None:
        session.execute(insert(EventRow), list(events))

    def count_events(self, session: Session) -> int:
        return int(session.execute(select(func.count(EventRow.id))).scalar_one())

    def iter_events(self, batch: int = 20_000) -> Iterator[list[tuple[str, str, str, float]]]:
        """The event log in time order as (user_id, item_id, type, ts)."""
        last_ts, last_id = -1e300, 0
        while True:
            with self.session() as session:
                rows = session.execute(
                    select(
                        EventRow.id, EventRow.user_id, EventRow.item_id, EventRow.type, EventRow.ts
                    )
                    .where(
                        (EventRow.ts > last_ts)
                        | ((EventRow.ts == last_ts) & (EventRow.id > last_id))
                    )
                    .order_by(EventRow.ts, EventRow.id)
                    .limit(batch)
                ).all()
            if not rows:
                return
            yield [(r[1], r[2], r[3], r[4]) for r in rows]
            last_id, last_ts = rows[-1][0], rows[-1][4]


def row_to_dict(row: ItemRow) -> dict[str, Any]:
    return {
        "id": row.item_id,
        **{f: getattr(row, f) for f in ITEM_FIELDS},
        "updated_at": row.updated_at,
    }
