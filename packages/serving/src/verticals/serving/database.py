"""SQLAlchemy engine and sessions: SQLite by default, PostgreSQL by URL for many replicas.

One code path for both: ``insert_for`` gives the dialect's ``INSERT`` with ``ON CONFLICT``,
``UTCDateTime`` reads back aware UTC datetimes on both, NUL characters (which PostgreSQL text
cannot hold) are stored as U+FFFD on both, and ``create_all`` is safe when replicas start at once.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

SUPPORTED = ("sqlite", "postgresql")
NUL_REPLACEMENT = "\ufffd"


class Base(DeclarativeBase):
    """Each service declares its tables on a subclass of this (its own metadata)."""

    __abstract__ = True


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no zone;
    PostgreSQL's ``timestamptz`` comes back in the session's zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` URLs use the psycopg 3 driver; SQLite and
    PostgreSQL are the supported databases."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.get_backend_name() not in SUPPORTED:
        raise ValueError(
            f"unsupported database {parsed.get_backend_name()!r} in the database URL "
            f"(supported: {', '.join(SUPPORTED)})"
        )
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT) if "\x00" in value else value
    if isinstance(value, dict):
        return {k: _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_strip_nul(v) for v in value)
    return value


def _no_nul(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> tuple[str, Any]:
    return statement, _strip_nul(parameters)


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record):  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    else:
        engine = create_engine(url, pool_pre_ping=True)
    event.listen(engine, "before_cursor_execute", _no_nul, retval=True)
    return engine


def insert_for(session: Session, model: Any) -> Any:
    """The bound dialect's ``INSERT`` for ``model``, with ``on_conflict_do_nothing`` /
    ``on_conflict_do_update`` / ``excluded`` (the same API on SQLite and PostgreSQL)."""
    name = session.get_bind().dialect.name
    module = postgresql if name == "postgresql" else sqlite
    return module.insert(model)


class Database:
    """An engine and its session factory; ``session()`` commits on success, rolls back on error."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_all(self, base: type[DeclarativeBase]) -> None:
        """Create missing tables; on PostgreSQL under an advisory lock, so replicas starting
        together do not race on the catalog. A read replica (hot standby) creates nothing."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                if conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
                    return
                key = zlib.crc32(b"verticals.create_all")
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            base.metadata.create_all(conn)

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A short write transaction on a plain connection (no ORM), for hot paths. On SQLite
        the process's writers queue on a lock: SQLite's own busy handler sleeps with a growing
        back-off, which gave concurrent chat requests a long latency tail."""
        if self._write_lock is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()
