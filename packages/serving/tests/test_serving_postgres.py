"""The shared database layer on both backends: SQLite and a real local PostgreSQL server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, Integer, String, Text, select, text
from sqlalchemy.orm import Mapped, mapped_column

from verticals.serving.database import Base, Database, UTCDateTime, insert_for, normalize_url


class ProbeBase(Base):
    __abstract__ = True


class Probe(ProbeBase):
    __tablename__ = "probe"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'probe.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_one_code_path_behaves_the_same_on_both(url: str) -> None:
    db = Database(url)
    db.create_all(ProbeBase)
    plus_two = timezone(timedelta(hours=2))
    with db.session() as s:
        s.add(Probe(name="a", note="nul\x00inside", data={"k": "v"}, at=datetime(2026, 3, 2, 9)))
        s.add(Probe(name="b", at=datetime(2026, 3, 2, 11, tzinfo=plus_two)))
    with db.session() as s:
        rows = {r.name: r for r in s.scalars(select(Probe))}
    # naive means UTC; every value comes back aware in UTC, whatever the server's zone
    assert rows["a"].at == datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert rows["a"].at.tzinfo is UTC and rows["b"].at.tzinfo is UTC
    assert rows["b"].at == rows["a"].at
    assert rows["a"].note == "nul\ufffdinside"  # PostgreSQL text cannot hold NUL
    assert rows["a"].data == {"k": "v"}
    assert rows["a"].id < rows["b"].id

    # INSERT ... ON CONFLICT through the dialect's insert, RETURNING the ids
    with db.session() as s:
        stmt = insert_for(s, Probe)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"], set_={"note": stmt.excluded.note}
        ).returning(Probe.id, Probe.name)
        got = dict(
            (name, pk)
            for pk, name in s.execute(
                stmt,
                [
                    {"name": "a", "note": "updated", "at": datetime.now(UTC)},
                    {"name": "c", "note": "new", "at": datetime.now(UTC)},
                ],
            )
        )
        ignore = insert_for(s, Probe).on_conflict_do_nothing(index_elements=["name"])
        fresh = s.execute(
            ignore.returning(Probe.name), [{"name": "c", "at": datetime.now(UTC)}]
        ).all()
    assert got["a"] == rows["a"].id and got["c"] > rows["b"].id
    assert fresh == []
    with db.session() as s:
        notes = dict(s.execute(select(Probe.name, Probe.note)).tuples().all())
    assert notes == {"a": "updated", "b": "", "c": "new"}
    db.dispose()


def test_replicas_creating_tables_at_once_do_not_race(postgres_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def replica() -> None:
        db = Database(postgres_url)
        try:
            start.wait()
            db.create_all(ProbeBase)
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = Database(postgres_url)
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM probe")).scalar() == 0
    db.dispose()


def test_database_urls() -> None:
    assert normalize_url("postgres://u:p@h:5/d") == "postgresql+psycopg://u:p@h:5/d"
    assert normalize_url("postgresql://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    assert normalize_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("sqlite:///var/x.db") == "sqlite:///var/x.db"
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        normalize_url("mysql://u:p@h/d")
