"""Vector stores: one interface, two implementations.

- ``FaissStore``: in process (the core's ``VectorIndex``), one copy per replica, rebuilt from
  the database at start; the default, and the only one with SQLite.
- ``PgVectorStore``: PostgreSQL with the pgvector extension. Rows live in a table beside the
  service's own, are written in the caller's transaction (``write``/``delete`` on its
  connection), and are searched in the database with an HNSW index (inner product on unit
  vectors). The scope (a tenant, say) and metadata filters are part of the index scan
  (``hnsw.iterative_scan``: the scan goes on until ``k`` rows pass them), so a filtered search
  is never a filtered top-k. Every replica reads the same rows: a write is answered everywhere
  at once.

Metadata is a flat mapping of strings to a string or a list of strings; a filter maps keys to
one string each and matches an item whose value equals it (or, for a list, contains it).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from verticals.core.vectors import VectorIndex

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

Filter = Mapping[str, str]
Metadata = Mapping[str, Any]
TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


class VectorStore(Protocol):
    """What the services need from a vector store, whichever it is."""

    def upsert(
        self, keys: np.ndarray, vectors: np.ndarray, metadata: Sequence[Metadata] | None = None
    ) -> None: ...

    def remove(self, keys: np.ndarray) -> None: ...

    def search_many(
        self, queries: np.ndarray, k: int, filter: Filter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keys and cosines (n, k), best first; missing slots have key -1."""
        ...

    def scores(self, keys: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Exact cosines of ``keys`` to one query."""
        ...

    def __len__(self) -> int: ...


def stored_text(value: object) -> str:
    """A string as both stores keep it: NUL (which PostgreSQL's jsonb cannot hold) as U+FFFD,
    as ``verticals.serving.database`` stores text."""
    return str(value).replace("\x00", "\ufffd")


def facets(metadata: Metadata) -> dict[str, list[str]]:
    """Metadata with every value a list of strings (how both stores keep it)."""
    out: dict[str, list[str]] = {}
    for key, value in metadata.items():
        if value is None or value == "" or value == []:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        out[stored_text(key)] = [stored_text(v) for v in values]
    return out


def clean_filter(filter: Filter) -> dict[str, str]:
    return {stored_text(key): stored_text(value) for key, value in filter.items()}


def matches(kept: Mapping[str, list[str]], filter: Filter) -> bool:
    """Whether stored facets pass a filter (every key present with the wanted value)."""
    return all(value in kept.get(key, ()) for key, value in clean_filter(filter).items())


class FaissStore(VectorIndex):
    """The in-process store: a ``VectorIndex`` plus each key's metadata and, per (key, value),
    the keys that have it, so a filtered search searches only the keys that pass
    (``VectorIndex.search_many``'s ``allowed``, an intersection of those sets)."""

    def __init__(self, dim: int, exact_max: int = 20_000, nprobe: int = 16, threads: int = 1):
        super().__init__(dim, exact_max, nprobe, threads)
        self.metadata: dict[int, dict[str, list[str]]] = {}
        self._postings: dict[tuple[str, str], set[int]] = {}

    def _set_metadata(self, key: int, kept: dict[str, list[str]] | None) -> None:
        for name, values in self.metadata.pop(key, {}).items():
            for value in values:
                posting = self._postings.get((name, value))
                if posting is not None:
                    posting.discard(key)
                    if not posting:
                        del self._postings[(name, value)]
        if kept is not None:
            self.metadata[key] = kept
            for name, values in kept.items():
                for value in values:
                    self._postings.setdefault((name, value), set()).add(key)

    def set_metadata(self, metadata: Mapping[int, Metadata]) -> None:
        """Metadata of keys already in the index (e.g. after loading saved vectors)."""
        with self.lock:
            for key, meta in metadata.items():
                self._set_metadata(int(key), facets(meta))

    def upsert(
        self, keys: np.ndarray, vectors: np.ndarray, metadata: Sequence[Metadata] | None = None
    ) -> None:
        with self.lock:
            super().upsert(keys, vectors)
            for i, key in enumerate(np.asarray(keys).tolist()):
                self._set_metadata(key, facets(metadata[i]) if metadata is not None else {})

    def remove(self, keys: np.ndarray) -> None:
        with self.lock:
            super().remove(keys)
            for key in np.asarray(keys).tolist():
                self._set_metadata(key, None)

    def allowed(self, filter: Filter) -> np.ndarray:
        wanted = list(clean_filter(filter).items())
        with self.lock:
            postings = sorted((self._postings.get(item, set()) for item in wanted), key=len)
            if not postings:
                return np.asarray(list(self.metadata), dtype=np.int64)
            keys = set(postings[0]).intersection(*postings[1:])
        return np.fromiter(keys, dtype=np.int64, count=len(keys))

    def search_many(  # type: ignore[override]
        self, queries: np.ndarray, k: int, filter: Filter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        allowed = self.allowed(filter) if filter else None
        return super().search_many(queries, k, allowed)


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form, ``[x,y,...]`` (exact for float32 with 9 significant digits)."""
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(vector, np.float32).tolist()) + "]"


class PgVectorStore:
    """Vectors of one ``scope`` in a pgvector table (created by ``ensure``), searched by HNSW
    with the scope and metadata filter inside the index scan. Thread-safe (a connection per
    call, from the engine's pool)."""

    def __init__(
        self, engine: Engine, table: str, dim: int, scope: str = "", ef_search: int = 40
    ) -> None:
        if not TABLE_NAME.match(table):
            raise ValueError(f"bad vector table name {table!r}")
        self.engine, self.table, self.dim, self.scope = engine, table, dim, scope
        self.ef_search = ef_search

    def scoped(self, scope: str) -> PgVectorStore:
        """The same table, another scope (e.g. one tenant's vectors)."""
        return PgVectorStore(self.engine, self.table, self.dim, scope, self.ef_search)

    @staticmethod
    def available(engine: Engine) -> bool:
        """Whether the server can create the pgvector extension (PostgreSQL with it
        installed)."""
        from sqlalchemy import text

        if engine.dialect.name != "postgresql":
            return False
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            ).first()
        return found is not None

    def ensure(self) -> None:
        """The extension, the table and its indexes (HNSW, and GIN on the metadata), created
        once under an advisory lock so replicas starting together do not race; a table made
        for another dimension is an error naming both. Nothing on a read replica."""
        from sqlalchemy import text

        t = self.table
        with self.engine.begin() as conn:
            if conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
                return  # a read replica: the primary made everything
            key = zlib.crc32(f"verticals.vectorstore.{t}".encode())
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            conn.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS {t} (scope text NOT NULL, key bigint NOT NULL, "
                    f"meta jsonb NOT NULL DEFAULT '{{}}', embedding vector({self.dim}) NOT NULL, "
                    "PRIMARY KEY (scope, key))"
                )
            )
            dim = conn.execute(
                text(
                    "SELECT atttypmod FROM pg_attribute "
                    "WHERE attrelid = CAST(:t AS regclass) AND attname = 'embedding'"
                ),
                {"t": t},
            ).scalar_one()
            if int(dim) != self.dim:
                raise ValueError(
                    f"vector table {t} holds {dim}-d vectors, the encoder makes {self.dim}-d "
                    f"ones: drop the table (it is rebuilt from the entries) or keep the encoder"
                )
            conn.execute(
                text(
                    f"CREATE INDEX IF NOT EXISTS {t}_hnsw ON {t} "
                    "USING hnsw (embedding vector_ip_ops) WITH (m = 16, ef_construction = 64)"
                )
            )
            conn.execute(
                text(f"CREATE INDEX IF NOT EXISTS {t}_meta ON {t} USING gin (meta jsonb_path_ops)")
            )

    # writes: in the caller's transaction -----------------------------------------------------
    def write(
        self,
        conn: Connection,
        keys: np.ndarray,
        vectors: np.ndarray,
        metadata: Sequence[Metadata] | None = None,
    ) -> None:
        from sqlalchemy import text

        rows = [
            {
                "scope": self.scope,
                "key": int(key),
                "meta": json.dumps(facets(metadata[i]) if metadata is not None else {}),
                "embedding": vector_literal(vector),
            }
            for i, (key, vector) in enumerate(zip(np.asarray(keys).tolist(), vectors, strict=True))
        ]
        if rows:
            conn.execute(
                text(
                    f"INSERT INTO {self.table} (scope, key, meta, embedding) "
                    "VALUES (:scope, :key, CAST(:meta AS jsonb), CAST(:embedding AS vector)) "
                    "ON CONFLICT (scope, key) DO UPDATE "
                    "SET meta = excluded.meta, embedding = excluded.embedding"
                ),
                rows,
            )

    def delete(self, conn: Connection, keys: np.ndarray | None = None) -> None:
        """Delete ``keys`` of the scope (every key of it with None)."""
        from sqlalchemy import text

        if keys is None:
            conn.execute(text(f"DELETE FROM {self.table} WHERE scope = :s"), {"s": self.scope})
            return
        conn.execute(
            text(f"DELETE FROM {self.table} WHERE scope = :s AND key = ANY(:keys)"),
            {"s": self.scope, "keys": [int(k) for k in np.asarray(keys).tolist()]},
        )

    def upsert(
        self, keys: np.ndarray, vectors: np.ndarray, metadata: Sequence[Metadata] | None = None
    ) -> None:
        with self.engine.begin() as conn:
            self.write(conn, keys, vectors, metadata)

    def remove(self, keys: np.ndarray) -> None:
        with self.engine.begin() as conn:
            self.delete(conn, keys)

    # reads ---------------------------------------------------------------------------------
    def search_many(
        self, queries: np.ndarray, k: int, filter: Filter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One HNSW scan per query, all in one statement; the filter is a jsonb containment the
        iterative scan checks row by row (``relaxed_order``, re-sorted here)."""
        from sqlalchemy import text

        n = len(queries)
        ids = np.full((n, max(k, 0)), -1, np.int64)
        scores = np.zeros((n, max(k, 0)), np.float32)
        if k <= 0 or not n:
            return ids, scores
        ef_search = min(max(int(k), self.ef_search), 1000)  # pgvector's largest
        where = "scope = :scope"
        params: dict[str, Any] = {"scope": self.scope, "k": int(k)}
        if filter:
            where += " AND meta @> CAST(:filter AS jsonb)"
            wanted = clean_filter(filter)
            params["filter"] = json.dumps({key: [value] for key, value in wanted.items()})
        # every query in one statement (one round trip): a lateral HNSW scan per query vector
        sql = text(
            "SELECT q.i, v.key, v.score "
            "FROM unnest(CAST(:qs AS vector[])) WITH ORDINALITY AS q(vec, i) "
            "CROSS JOIN LATERAL (SELECT key, (embedding <#> q.vec) * -1 AS score "
            f"FROM {self.table} WHERE {where} ORDER BY embedding <#> q.vec LIMIT :k) AS v"
        )
        params["qs"] = "{" + ",".join(f'"{vector_literal(q)}"' for q in queries) + "}"
        # reads in autocommit (no BEGIN/COMMIT round trips); the scan settings are set on the
        # pooled connection once, and again only when ef_search changes
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if conn.info.get("verticals.hnsw") != ef_search:
                conn.execute(text("SET hnsw.iterative_scan = relaxed_order"))
                conn.execute(text(f"SET hnsw.ef_search = {ef_search}"))
                conn.info["verticals.hnsw"] = ef_search
            found = conn.execute(sql, params).all()
        by_query: dict[int, list[tuple[int, float]]] = {}
        for i, key, score in found:
            by_query.setdefault(int(i) - 1, []).append((int(key), float(score)))
        for i, rows in by_query.items():
            rows.sort(key=lambda r: -r[1])  # relaxed order: nearly sorted
            for j, (key, score) in enumerate(rows):
                ids[i, j], scores[i, j] = key, score
        return ids, scores

    def scores(self, keys: np.ndarray, query: np.ndarray) -> np.ndarray:
        from sqlalchemy import text

        wanted = [int(k) for k in np.asarray(keys).tolist()]
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT key, (embedding <#> CAST(:q AS vector)) * -1 FROM {self.table} "
                    "WHERE scope = :s AND key = ANY(:keys)"
                ),
                {"s": self.scope, "keys": wanted, "q": vector_literal(query)},
            ).all()
        found = {int(key): float(score) for key, score in rows}
        return np.asarray([found.get(k, 0.0) for k in wanted], dtype=np.float32)

    def keys(self) -> np.ndarray:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT key FROM {self.table} WHERE scope = :s"), {"s": self.scope}
            ).scalars()
            return np.asarray(list(rows), dtype=np.int64)

    def __len__(self) -> int:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(f"SELECT count(*) FROM {self.table} WHERE scope = :s"), {"s": self.scope}
                ).scalar_one()
            )
