"""Tables and queries: tenants, knowledge-base entries, transcripts, handoffs, feedback."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from verticals.serving.database import Base, Database
from verticals.support_bot.text import EntryIn


def now() -> datetime:
    return datetime.now(UTC)


class SupportBase(Base):
    __abstract__ = True


class Tenant(SupportBase):
    __tablename__ = "support_tenants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    admin_key_hash: Mapped[str] = mapped_column(String(64), index=True)
    widget_key_hash: Mapped[str] = mapped_column(String(64), index=True)
    calibration: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Entry(SupportBase):
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
    category: Mapped[str] = mapped_column(String(100), default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    url: Mapped[str] = mapped_column(String(1000), default="")
    source: Mapped[str] = mapped_column(String(300), default="")
    paraphrases: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)

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
        )


class Message(SupportBase):
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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Handoff(SupportBase):
    __tablename__ = "support_handoffs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    session_id: Mapped[str] = mapped_column(String(128))
    question: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | answered | closed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Feedback(SupportBase):
    __tablename__ = "support_feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    session_id: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[int | None] = mapped_column(default=None)
    rating: Mapped[str] = mapped_column(String(16))  # up | down | resolved
    query: Mapped[str] = mapped_column(Text, default="")
    entry_id: Mapped[str] = mapped_column(String(160), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Store:
    """All queries the service makes; one short transaction each."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.db.create_all(SupportBase)

    # tenants -------------------------------------------------------------------------------
    def create_tenant(self, tenant: str, name: str, admin_hash: str, widget_hash: str) -> None:
        with self.db.session() as s:
            s.add(
                Tenant(id=tenant, name=name, admin_key_hash=admin_hash, widget_key_hash=widget_hash)
            )

    def tenant(self, tenant: str) -> Tenant | None:
        with self.db.session() as s:
            return s.get(Tenant, tenant)

    def tenants(self) -> list[Tenant]:
        with self.db.session() as s:
            return list(s.scalars(select(Tenant).order_by(Tenant.id)))

    def set_keys(self, tenant: str, admin_hash: str | None, widget_hash: str | None) -> None:
        with self.db.session() as s:
            row = s.get(Tenant, tenant)
            assert row is not None
            if admin_hash:
                row.admin_key_hash = admin_hash
            if widget_hash:
                row.widget_key_hash = widget_hash

    def key_owner(self, key_hash: str) -> tuple[str, str] | None:
        """(tenant, role) for a hashed key, role ``admin`` or ``widget``."""
        with self.db.session() as s:
            row = s.scalars(select(Tenant).where(Tenant.admin_key_hash == key_hash)).first()
            if row:
                return row.id, "admin"
            row = s.scalars(select(Tenant).where(Tenant.widget_key_hash == key_hash)).first()
            return (row.id, "widget") if row else None

    def set_calibration(self, tenant: str, calibration: dict[str, Any]) -> None:
        with self.db.session() as s:
            row = s.get(Tenant, tenant)
            assert row is not None
            row.calibration = calibration

    # entries -------------------------------------------------------------------------------
    def upsert(self, tenant: str, entries: list[EntryIn]) -> list[tuple[int, EntryIn]]:
        """Insert or update by (tenant, id); returns (pk, entry) for each, in one transaction."""
        out: list[tuple[int, EntryIn]] = []
        with self.db.session() as s:
            existing = {
                e.entry_id: e
                for e in s.scalars(
                    select(Entry).where(
                        Entry.tenant_id == tenant, Entry.entry_id.in_([e.id for e in entries])
                    )
                )
            }
            rows = []
            for e in entries:
                row = existing.get(e.id) or Entry(tenant_id=tenant, entry_id=e.id)
                row.kind, row.title, row.heading, row.body = e.kind, e.title, e.heading, e.body
                row.category, row.tags, row.url, row.source = e.category, e.tags, e.url, e.source
                row.paraphrases, row.updated_at = e.paraphrases, now()
                s.add(row)
                rows.append((row, e))
            s.flush()
            out = [(row.pk, e) for row, e in rows]
        return out

    def delete(self, tenant: str, entry_ids: list[str]) -> list[int]:
        with self.db.session() as s:
            rows = list(
                s.scalars(
                    select(Entry).where(Entry.tenant_id == tenant, Entry.entry_id.in_(entry_ids))
                )
            )
            pks = [r.pk for r in rows]
            if pks:
                s.execute(delete(Entry).where(Entry.pk.in_(pks)))
        return pks

    def document_passages(self, tenant: str, doc_id: str) -> list[str]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(Entry.entry_id).where(
                        Entry.tenant_id == tenant, Entry.kind == "passage", Entry.source == doc_id
                    )
                )
            )

    def entries(
        self, tenant: str, kind: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[Entry]:
        with self.db.session() as s:
            q = select(Entry).where(Entry.tenant_id == tenant)
            if kind:
                q = q.where(Entry.kind == kind)
            q = q.order_by(Entry.pk).offset(offset)
            if limit:
                q = q.limit(limit)
            return list(s.scalars(q))

    def entry(self, tenant: str, entry_id: str) -> Entry | None:
        with self.db.session() as s:
            return s.scalars(
                select(Entry).where(Entry.tenant_id == tenant, Entry.entry_id == entry_id)
            ).first()

    def count(self, tenant: str) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).where(Entry.tenant_id == tenant)) or 0)

    # transcripts ---------------------------------------------------------------------------
    def add_message(self, tenant: str, session: str, role: str, text: str, **fields: Any) -> int:
        with self.db.session() as s:
            row = Message(tenant_id=tenant, session_id=session, role=role, text=text, **fields)
            s.add(row)
            s.flush()
            return row.id

    def recent_messages(self, tenant: str, session: str, limit: int) -> list[Message]:
        with self.db.session() as s:
            rows = s.scalars(
                select(Message)
                .where(Message.tenant_id == tenant, Message.session_id == session)
                .order_by(Message.id.desc())
                .limit(limit)
            )
            return list(reversed(list(rows)))

    def message(self, tenant: str, message_id: int) -> Message | None:
        with self.db.session() as s:
            row = s.get(Message, message_id)
            return row if row and row.tenant_id == tenant else None

    # handoffs ------------------------------------------------------------------------------
    def add_handoff(self, tenant: str, session: str, question: str, reason: str) -> Handoff:
        with self.db.session() as s:
            row = Handoff(tenant_id=tenant, session_id=session, question=question, reason=reason)
            s.add(row)
            s.flush()
            return row

    def handoffs(self, tenant: str, status: str | None = None) -> list[Handoff]:
        with self.db.session() as s:
            q = select(Handoff).where(Handoff.tenant_id == tenant)
            if status:
                q = q.where(Handoff.status == status)
            return list(s.scalars(q.order_by(Handoff.id)))

    def handoff(self, tenant: str, handoff_id: int) -> Handoff | None:
        with self.db.session() as s:
            row = s.get(Handoff, handoff_id)
            return row if row and row.tenant_id == tenant else None

    def set_handoff_status(self, handoff_id: int, status: str) -> None:
        with self.db.session() as s:
            row = s.get(Handoff, handoff_id)
            assert row is not None
            row.status, row.updated_at = status, now()

    # feedback ------------------------------------------------------------------------------
    def add_feedback(self, tenant: str, session: str, rating: str, **fields: Any) -> int:
        with self.db.session() as s:
            row = Feedback(tenant_id=tenant, session_id=session, rating=rating, **fields)
            s.add(row)
            s.flush()
            return row.id

    def feedback(self, tenant: str) -> list[Feedback]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(Feedback).where(Feedback.tenant_id == tenant).order_by(Feedback.id)
                )
            )


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
