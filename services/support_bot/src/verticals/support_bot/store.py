"""Tables and queries: tenants, knowledge-base entries, transcripts, handoffs, feedback."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from verticals.serving.database import Base, Database, UTCDateTime, insert_for
from verticals.support_bot.text import EntryIn, InputError


def now() -> datetime:
    return datetime.now(UTC)


class SupportBase(Base):
    __abstract__ = True


class TenantRow(SupportBase):
    __tablename__ = "support_tenants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text, default="")
    admin_key_hash: Mapped[str] = mapped_column(String(64), index=True)
    widget_key_hash: Mapped[str] = mapped_column(String(64), index=True)
    calibration: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class EntryRow(SupportBase):
    """The integer primary key doubles as the FAISS id, so updates never renumber."""

    __tablename__ = "support_entries"
    __table_args__ = (UniqueConstraint("tenant_id", "entry_id"),)
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("support_tenants.id", ondelete="CASCADE"))
    entry_id: Mapped[str] = mapped_column(String(160))
    kind: Mapped[str] = mapped_column(String(16), default="faq")
    title: Mapped[str] = mapped_column(Text, default="")
    heading: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    # free-form: Text, so PostgreSQL (which enforces VARCHAR lengths) stores what SQLite does
    category: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    url: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="")
    paraphrases: Mapped[list[str]] = mapped_column(JSON, default=list)
    meta: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    """Any key/value metadata (added to older databases at start, see ``Store``)."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    def to_entry(self) -> EntryIn:
        return EntryIn(
            id=self.entry_id,
            title=self.title,
            body=self.body,
            kind=self.kind,
            heading=self.heading,
            category=self.category,
            tags=list(self.tags or []),
            url=self.url,
            source=self.source,
            paraphrases=list(self.paraphrases or []),
            metadata=dict(self.meta or {}),
        )


class KnowledgeVersionRow(SupportBase):
    """A tenant's knowledge-base version, bumped in the transaction of every change to its
    entries: a replica compares it with the one its in-process indexes were read at. With
    pgvector, ``encoder`` is the encoder version the stored vectors were made with."""

    __tablename__ = "support_knowledge_versions"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    encoder: Mapped[str] = mapped_column(Text, default="")


class KnowledgeChangeRow(SupportBase):
    """The entry keys each knowledge version changed (upserted or deleted): a replica at
    version v re-reads only the entries of the versions after it."""

    __tablename__ = "support_knowledge_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(BigInteger, index=True)
    entry_pk: Mapped[int] = mapped_column(Integer)


CHANGES_KEPT = 10_000
"""Knowledge versions whose changes are kept per tenant; a replica further behind re-reads all."""


class MessageRow(SupportBase):
    __tablename__ = "support_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    session_id: Mapped[str] = mapped_column(String(128), index=True)
    role: Mapped[str] = mapped_column(String(16))  # user | bot | staff
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default="")  # answer|clarify|handoff|staff
    query: Mapped[str] = mapped_column(Text, default="")  # the query actually retrieved with
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    confidence: Mapped[float | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class HandoffRow(SupportBase):
    __tablename__ = "support_handoffs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    session_id: Mapped[str] = mapped_column(String(128))
    question: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | answered | closed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class FeedbackRow(SupportBase):
    __tablename__ = "support_feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    session_id: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[int | None] = mapped_column(default=None)
    rating: Mapped[str] = mapped_column(String(16))  # up | down | resolved
    query: Mapped[str] = mapped_column(Text, default="")
    entry_id: Mapped[str] = mapped_column(String(160), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


ENTRY_FIELDS = (
    *("kind", "title", "heading", "body", "category"),
    *("tags", "url", "source", "paraphrases"),
)
ADDED_COLUMNS = {"meta": "JSON"}
"""Entry columns newer than the first schema: added to an existing table at start."""
WriteHook = Callable[[Connection, list[tuple[int, EntryIn]]], None]
DeleteHook = Callable[[Connection, list[int]], None]


class Store:
    """All queries the service makes; one short transaction each."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.db.create_all(SupportBase)
        self._add_columns()

    def _add_columns(self) -> None:
        table = EntryRow.__tablename__
        have = {c["name"] for c in inspect(self.db.engine).get_columns(table)}
        missing = [c for c in ADDED_COLUMNS if c not in have]
        if missing:
            with self.db.engine.begin() as conn:
                for column in missing:
                    kind = ADDED_COLUMNS[column]  # as create_all makes it (json on PostgreSQL)
                    exists = "IF NOT EXISTS " if self.db.dialect == "postgresql" else ""
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {exists}{column} {kind}"))

    @staticmethod
    def _bump(
        conn: Connection, tenant: str, encoder: str | None = None, pks: list[int] | None = None
    ) -> None:
        """Next knowledge version of ``tenant`` (and the vectors' encoder), with the entry keys
        it changed, in ``conn``'s transaction. The version row's lock orders the tenant's
        writers, so versions commit in order."""
        stmt = (
            postgresql_insert(KnowledgeVersionRow)
            if conn.dialect.name == "postgresql"
            else sqlite_insert(KnowledgeVersionRow)
        )
        values: dict[str, Any] = {"tenant_id": tenant, "version": 1}
        update: dict[str, Any] = {"version": KnowledgeVersionRow.version + 1}
        if encoder is not None:
            values["encoder"] = update["encoder"] = encoder
        conn.execute(
            stmt.values(**values).on_conflict_do_update(index_elements=["tenant_id"], set_=update)
        )
        if pks:
            version = Store.version_in(conn, tenant)
            rows = [{"tenant_id": tenant, "version": version, "entry_pk": pk} for pk in pks]
            conn.execute(insert(KnowledgeChangeRow), rows)
            if version % 100 == 0:
                conn.execute(
                    delete(KnowledgeChangeRow).where(
                        KnowledgeChangeRow.tenant_id == tenant,
                        KnowledgeChangeRow.version <= version - CHANGES_KEPT,
                    )
                )

    def knowledge_changes(self, tenant: str, after: int, upto: int) -> list[int] | None:
        """Entry keys changed by versions ``after`` < v <= ``upto``; None when some of those
        versions left no record (pruned, or written before the log existed): re-read all."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(KnowledgeChangeRow.version, KnowledgeChangeRow.entry_pk).where(
                    KnowledgeChangeRow.tenant_id == tenant,
                    KnowledgeChangeRow.version > after,
                    KnowledgeChangeRow.version <= upto,
                )
            ).all()
        if {int(v) for v, _ in rows} != set(range(after + 1, upto + 1)):
            return None
        return sorted({int(pk) for _, pk in rows})

    def entries_by_pk(self, tenant: str, pks: list[int]) -> list[EntryRow]:
        out: list[EntryRow] = []
        with self.db.session() as s:
            for start in range(0, len(pks), 500):
                chunk = pks[start : start + 500]
                out += s.scalars(
                    select(EntryRow).where(EntryRow.tenant_id == tenant, EntryRow.pk.in_(chunk))
                )
        return out

    def read_only(self) -> bool:
        """A PostgreSQL read replica (hot standby)."""
        if self.db.dialect != "postgresql":
            return False
        with self.db.engine.connect() as conn:
            return bool(conn.execute(text("SELECT pg_is_in_recovery()")).scalar())

    @staticmethod
    def version_in(conn: Connection, tenant: str) -> int:
        """The tenant's knowledge version as ``conn``'s transaction sees it."""
        found = conn.execute(
            select(KnowledgeVersionRow.version).where(KnowledgeVersionRow.tenant_id == tenant)
        ).scalar()
        return int(found or 0)

    def knowledge_version(self, tenant: str) -> tuple[int, str]:
        """(version, vectors' encoder) of a tenant's knowledge base; (0, "") before any."""
        with self.db.engine.connect() as conn:
            row = conn.execute(
                select(KnowledgeVersionRow.version, KnowledgeVersionRow.encoder).where(
                    KnowledgeVersionRow.tenant_id == tenant
                )
            ).first()
        return (int(row[0]), str(row[1] or "")) if row else (0, "")

    def replace_vectors(
        self, tenant: str, encoder: str, write: Callable[[Connection], None]
    ) -> None:
        """Run ``write`` (rewriting the tenant's stored vectors) in one transaction that also
        records the encoder they were made with."""
        with self.db.write() as conn:
            write(conn)
            self._bump(conn, tenant, encoder)

    # tenants -------------------------------------------------------------------------------
    def create_tenant(self, tenant: str, name: str, admin_hash: str, widget_hash: str) -> None:
        with self.db.session() as s:
            s.add(
                TenantRow(
                    id=tenant, name=name, admin_key_hash=admin_hash, widget_key_hash=widget_hash
                )
            )

    def tenant(self, tenant: str) -> TenantRow | None:
        with self.db.session() as s:
            return s.get(TenantRow, tenant)

    def tenants(self) -> list[TenantRow]:
        with self.db.session() as s:
            return list(s.scalars(select(TenantRow).order_by(TenantRow.id)))

    def set_keys(self, tenant: str, admin_hash: str | None, widget_hash: str | None) -> None:
        with self.db.session() as s:
            row = s.get(TenantRow, tenant)
            assert row is not None
            if admin_hash:
                row.admin_key_hash = admin_hash
            if widget_hash:
                row.widget_key_hash = widget_hash

    def key_owner(self, key_hash: str) -> tuple[str, str] | None:
        """(tenant, role) for a hashed key, role ``admin`` or ``widget``."""
        with self.db.session() as s:
            row = s.scalars(select(TenantRow).where(TenantRow.admin_key_hash == key_hash)).first()
            if row:
                return row.id, "admin"
            row = s.scalars(select(TenantRow).where(TenantRow.widget_key_hash == key_hash)).first()
            return (row.id, "widget") if row else None

    def set_calibration(self, tenant: str, calibration: dict[str, Any]) -> None:
        with self.db.session() as s:
            row = s.get(TenantRow, tenant)
            assert row is not None
            row.calibration = calibration

    # entries -------------------------------------------------------------------------------
    def upsert(
        self,
        tenant: str,
        entries: list[EntryIn],
        then: WriteHook | None = None,
        encoder: str | None = None,
    ) -> list[tuple[int, EntryIn]]:
        """Insert or update by (tenant, id) in one ``INSERT ... ON CONFLICT DO UPDATE``
        (replicas writing the same ids at once both succeed); returns (pk, entry) for each.
        ``then`` runs in the same transaction with them (the vectors, with pgvector, made by
        ``encoder``)."""
        if not entries:
            return []
        if len({e.id for e in entries}) != len(entries):
            raise InputError("duplicate entry ids in one change")
        stamp = now()
        rows = [
            {"tenant_id": tenant, "entry_id": e.id, "updated_at": stamp, "meta": e.metadata}
            | {f: getattr(e, f) for f in ENTRY_FIELDS}
            for e in entries
        ]
        with self.db.session() as s:
            stmt = insert_for(s, EntryRow)
            stmt = stmt.on_conflict_do_update(
                index_elements=["tenant_id", "entry_id"],
                set_={f: stmt.excluded[f] for f in (*ENTRY_FIELDS, "meta", "updated_at")},
            )
            result = s.execute(stmt.returning(EntryRow.entry_id, EntryRow.pk), rows)
            pks = {entry_id: pk for entry_id, pk in result}
            items = [(pks[e.id], e) for e in entries]
            self._bump(s.connection(), tenant, encoder, [pk for pk, _ in items])
            if then is not None:
                then(s.connection(), items)
        return items

    def delete(
        self, tenant: str, entry_ids: list[str], then: DeleteHook | None = None
    ) -> list[int]:
        """Delete entries by id; ``then`` runs in the same transaction with their keys."""
        with self.db.session() as s:
            rows = list(
                s.scalars(
                    select(EntryRow).where(
                        EntryRow.tenant_id == tenant, EntryRow.entry_id.in_(entry_ids)
                    )
                )
            )
            pks = [r.pk for r in rows]
            if pks:
                s.execute(delete(EntryRow).where(EntryRow.pk.in_(pks)))
                self._bump(s.connection(), tenant, None, pks)
                if then is not None:
                    then(s.connection(), pks)
        return pks

    def document_passages(self, tenant: str, doc_id: str) -> list[str]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(EntryRow.entry_id).where(
                        EntryRow.tenant_id == tenant,
                        EntryRow.kind == "passage",
                        EntryRow.source == doc_id,
                    )
                )
            )

    def entries(
        self, tenant: str, kind: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[EntryRow]:
        with self.db.session() as s:
            q = select(EntryRow).where(EntryRow.tenant_id == tenant)
            if kind:
                q = q.where(EntryRow.kind == kind)
            q = q.order_by(EntryRow.pk).offset(offset)
            if limit:
                q = q.limit(limit)
            return list(s.scalars(q))

    def entry(self, tenant: str, entry_id: str) -> EntryRow | None:
        with self.db.session() as s:
            return s.scalars(
                select(EntryRow).where(EntryRow.tenant_id == tenant, EntryRow.entry_id == entry_id)
            ).first()

    def count(self, tenant: str) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).where(EntryRow.tenant_id == tenant)) or 0)

    # transcripts ---------------------------------------------------------------------------
    def add_message(self, tenant: str, session: str, role: str, text: str, **fields: Any) -> int:
        with self.db.session() as s:
            row = MessageRow(tenant_id=tenant, session_id=session, role=role, text=text, **fields)
            s.add(row)
            s.flush()
            return row.id

    def add_turns(self, turns: list[dict[str, Any]]) -> list[tuple[int, int | None]]:
        """Chat turns in one transaction, each ``{tenant, session, user, bot, handoff}``: the
        user's message, the bot's reply (fields of ``MessageRow``) and the handoff it raised, if
        any. Returns (reply id, handoff id) per turn. Plain inserts, not the ORM unit of work:
        this runs on every chat."""
        stamp = now()
        blank: dict[str, Any] = {"kind": "", "query": "", "citations": [], "confidence": None}
        rows = []
        for t in turns:
            base = {"tenant_id": t["tenant"], "session_id": t["session"], "created_at": stamp}
            rows.append({**base, **blank, "role": "user", **t["user"]})
            rows.append({**base, **blank, "role": "bot", **t["bot"]})
        out: list[tuple[int, int | None]] = []
        with self.db.write() as conn:
            ids = list(
                conn.execute(
                    insert(MessageRow).returning(MessageRow.id, sort_by_parameter_order=True), rows
                ).scalars()
            )
            for n, t in enumerate(turns):
                ticket = None
                if t["handoff"]:
                    ticket = conn.execute(
                        insert(HandoffRow)
                        .values(
                            tenant_id=t["tenant"],
                            session_id=t["session"],
                            created_at=stamp,
                            updated_at=stamp,
                            **t["handoff"],
                        )
                        .returning(HandoffRow.id)
                    ).scalar_one()
                out.append((ids[2 * n + 1], ticket))
        return out

    def previous_query(self, tenant: str, session: str, within: int) -> str | None:
        """What the session's last user message asked (the query it was retrieved with), if it
        is among the ``within`` most recent messages."""
        with self.db.engine.connect() as conn:
            recent = conn.execute(
                select(MessageRow.role, MessageRow.query, MessageRow.text)
                .where(MessageRow.tenant_id == tenant, MessageRow.session_id == session)
                .order_by(MessageRow.id.desc())
                .limit(within)
            ).all()  # read to the end: a half-read cursor keeps a snapshot that blocks writes
        return next((q or text for role, q, text in recent if role == "user"), None)

    def recent_messages(self, tenant: str, session: str, limit: int) -> list[MessageRow]:
        with self.db.session() as s:
            rows = s.scalars(
                select(MessageRow)
                .where(MessageRow.tenant_id == tenant, MessageRow.session_id == session)
                .order_by(MessageRow.id.desc())
                .limit(limit)
            )
            return list(reversed(list(rows)))

    def message(self, tenant: str, message_id: int) -> MessageRow | None:
        with self.db.session() as s:
            row = s.get(MessageRow, message_id)
            return row if row and row.tenant_id == tenant else None

    # handoffs ------------------------------------------------------------------------------
    def handoffs(self, tenant: str, status: str | None = None) -> list[HandoffRow]:
        with self.db.session() as s:
            q = select(HandoffRow).where(HandoffRow.tenant_id == tenant)
            if status:
                q = q.where(HandoffRow.status == status)
            return list(s.scalars(q.order_by(HandoffRow.id)))

    def handoff(self, tenant: str, handoff_id: int) -> HandoffRow | None:
        with self.db.session() as s:
            row = s.get(HandoffRow, handoff_id)
            return row if row and row.tenant_id == tenant else None

    def set_handoff_status(self, handoff_id: int, status: str) -> None:
        with self.db.session() as s:
            row = s.get(HandoffRow, handoff_id)
            assert row is not None
            row.status, row.updated_at = status, now()

    # feedback ------------------------------------------------------------------------------
    def add_feedback(self, tenant: str, session: str, rating: str, **fields: Any) -> int:
        with self.db.session() as s:
            row = FeedbackRow(tenant_id=tenant, session_id=session, rating=rating, **fields)
            s.add(row)
            s.flush()
            return row.id

    def feedback(self, tenant: str) -> list[FeedbackRow]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(FeedbackRow)
                    .where(FeedbackRow.tenant_id == tenant)
                    .order_by(FeedbackRow.id)
                )
            )


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
