"""A tenant's knowledge: entries (FAQs, document passages) and the lifecycle of its indexes
(build, persist, load, rebuild when the encoder or the stored entries changed).

Two vector stores (``SupportSettings.vector_store``):

- FAISS, in process (the default, and always with SQLite): each replica holds its own index,
  saved under the data folder and rebuilt at start when it no longer matches the database;
- pgvector, when the database is PostgreSQL with the extension: the vectors are rows of the
  ``support_vectors`` table, written in the transaction of their entries, and searched in the
  database, so every replica answers from a write at once. Each replica keeps only the entry
  map and BM25, re-read when the tenant's knowledge version (bumped with every change) moved.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verticals.core.vectorstore import PgVectorStore
from verticals.support_bot.index import TenantIndex, vector_rows
from verticals.support_bot.rescoring import Rescorer
from verticals.support_bot.settings import SupportSettings
from verticals.support_bot.store import Store
from verticals.support_bot.tenants import Tenants
from verticals.support_bot.text import (
    EntryIn,
    InputError,
    fingerprint,
    parse_faq,
    split_document,
)

log = logging.getLogger("verticals.support_bot")
VECTOR_TABLE = "support_vectors"
VERSION_CHECK_S = 0.05
"""pgvector: how long a replica trusts its knowledge version before reading it again."""


def pick_vector_store(
    settings: SupportSettings, store: Store, dimension: int
) -> PgVectorStore | None:
    """The pgvector store when the settings ask for it (``pgvector``) or allow it (``auto``: a
    PostgreSQL database whose server has the extension), else None (FAISS in process)."""
    choice = settings.vector_store
    if choice == "faiss":
        return None
    engine = store.db.engine
    if not PgVectorStore.available(engine):
        if choice == "pgvector":
            raise ValueError(
                "VERTICALS_SUPPORT_VECTOR_STORE=pgvector needs a PostgreSQL database whose server "
                "has the pgvector extension (e.g. the pgvector/pgvector image)"
            )
        if store.db.dialect == "postgresql":
            log.warning("PostgreSQL without pgvector: vectors stay in each replica's FAISS index")
        return None
    pg = PgVectorStore(engine, VECTOR_TABLE, dimension, ef_search=settings.hnsw_ef_search)
    pg.ensure()
    return pg


class Knowledge:
    """Entries in the store and, in step with them, one ``TenantIndex`` per tenant."""

    def __init__(
        self,
        settings: SupportSettings,
        store: Store,
        encoder: Any,
        tenants: Tenants,
        persist: bool = True,
        rescorer: Rescorer | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.encoder = encoder
        self.tenants = tenants
        self.persist = persist
        self.rescorer = rescorer
        """The second encoder, whose entry vectors are computed with the first's."""
        self.indexes: dict[str, TenantIndex] = {}
        self._lock = threading.RLock()
        self.pg = pick_vector_store(settings, store, encoder.dimension)

    @property
    def store_kind(self) -> str:
        return "faiss" if self.pg is None else "pgvector"

    # indexes -------------------------------------------------------------------------------
    def _manifest(self) -> dict[str, Any]:
        return {"encoder": self.encoder.version, "dimension": self.encoder.dimension}

    def load(self) -> dict[str, str]:
        """Load every tenant's saved index, rebuilding those that are missing or stale: another
        encoder, or entries that differ from the database's (a replica wrote them)."""
        self.tenants.forget()
        how = {}
        for tenant in self.store.tenants():
            if self.pg is not None:
                how[tenant.id] = self._load_shared(tenant.id)
                continue
            entries = {e.pk: e.to_entry() for e in self.store.entries(tenant.id)}
            folder = self.settings.index_dir() / tenant.id
            expect = {**self._manifest(), "entries": fingerprint(entries)}
            index = (
                TenantIndex.load(folder, entries, expect, self.settings.exact_search_max)
                if self.persist
                else None
            )
            if index is None:
                self.rebuild(tenant.id, entries)
                how[tenant.id] = "rebuilt"
            else:
                with self._lock:
                    self.indexes[tenant.id] = index
                how[tenant.id] = "loaded"
                if self.rescorer is not None:  # a cache saved before is not encoded again
                    self.rescorer.warm([e.index_text() for e in entries.values()])
        return how

    def _load_shared(self, tenant: str) -> str:
        """pgvector: read the entry map; re-encode when the stored vectors are another
        encoder's or do not match the entries (two per entry)."""
        version, encoder = self.store.knowledge_version(tenant)
        entries = {e.pk: e.to_entry() for e in self.store.entries(tenant)}
        assert self.pg is not None
        if encoder != self.encoder.version or len(self.pg.scoped(tenant)) != 2 * len(entries):
            if not self.store.read_only():
                self.rebuild(tenant, entries)
                return "rebuilt"
            log.warning(
                "read replica: tenant %s's vectors do not match, served as they are", tenant
            )
        index = self._new_index(tenant)
        index.upsert(list(entries.items()))
        index.version = version
        with self._lock:
            self.indexes[tenant] = index
        return "loaded"

    def index(self, tenant: str) -> TenantIndex:
        with self._lock:
            index = self.indexes.get(tenant)
            if index is None:
                self.tenants.require(tenant)
                index = self.indexes[tenant] = self._new_index(tenant)
            return index

    def fresh_index(self, tenant: str) -> TenantIndex:
        """The tenant's index, its entry map re-read first when another replica (or process)
        changed the knowledge base since (pgvector; one primary-key read, at most every
        ``VERSION_CHECK_S``: a chat batch asks several times)."""
        index = self.index(tenant)
        if self.pg is None:
            return index
        now = time.monotonic()
        if now - index.checked_at < VERSION_CHECK_S:
            return index
        index.checked_at = now
        version, _ = self.store.knowledge_version(tenant)
        if version == index.version:
            return index
        changed = self.store.knowledge_changes(tenant, index.version, version)
        if changed is None:  # too far behind: every entry
            entries = {e.pk: e.to_entry() for e in self.store.entries(tenant)}
            gone = [pk for pk in index.entries if pk not in entries]
        else:
            entries = {e.pk: e.to_entry() for e in self.store.entries_by_pk(tenant, changed)}
            gone = [pk for pk in changed if pk not in entries]
        with index.lock:
            index.remove(gone)
            index.upsert(list(entries.items()))
            index.version = max(index.version, version)
        return index

    def _new_index(self, tenant: str) -> TenantIndex:
        shared = self.pg.scoped(tenant) if self.pg is not None else None
        return TenantIndex(self.encoder.dimension, self.settings.exact_search_max, shared)

    def rebuild(self, tenant: str, entries: dict[int, EntryIn] | None = None) -> int:
        """Re-encode a tenant's entries into fresh indexes (after an encoder change)."""
        self.tenants.require(tenant)
        if entries is None:
            entries = {e.pk: e.to_entry() for e in self.store.entries(tenant)}
        index = self._new_index(tenant)
        items = list(entries.items())
        if self.pg is not None:
            pg = self.pg.scoped(tenant)
            full, short = self.vectors([e for _, e in items]) if items else (None, None)

            def write(conn: Any) -> None:
                pg.delete(conn)
                if full is not None and short is not None:
                    pg.write(conn, *vector_rows(items, full, short))

            self.store.replace_vectors(tenant, self.encoder.version, write)
            index.upsert(items)
            index.version = self.store.knowledge_version(tenant)[0]
        elif items:
            index.upsert(items, *self.vectors([e for _, e in items]))
        with self._lock:
            self.indexes[tenant] = index
        self._save(tenant)
        return len(items)

    def vectors(self, entries: Sequence[EntryIn]) -> tuple[np.ndarray, np.ndarray]:
        """Full-text vectors and question vectors (passages reuse their full-text vector); the
        second encoder's vectors go into its cache."""
        if self.rescorer is not None:
            self.rescorer.warm([e.index_text() for e in entries])
        full = self.encoder.encode([e.index_text() for e in entries])
        short = full.copy()
        rows = [i for i, e in enumerate(entries) if e.short_text()]
        if rows:
            short[rows] = self.encoder.encode([entries[i].short_text() or "" for i in rows])
        return full, short

    def _save(self, tenant: str) -> None:
        if self.persist and self.pg is None:
            index = self.index(tenant)
            with index.lock:  # the digest of exactly what is saved
                manifest = {**self._manifest(), "entries": fingerprint(index.entries)}
                index.save(self.settings.index_dir() / tenant, manifest)

    # entries -------------------------------------------------------------------------------
    def upsert(self, tenant: str, entries: list[EntryIn]) -> int:
        self.tenants.require(tenant)
        if len(entries) > self.settings.max_entries_per_request:
            raise InputError(
                f"{len(entries)} entries in one request; the limit is "
                f"{self.settings.max_entries_per_request}"
            )
        for e in entries:
            if len(e.title) + len(e.body) > self.settings.max_entry_chars:
                raise InputError(
                    f"entry {e.id!r} is over {self.settings.max_entry_chars} characters"
                )
        full, short = self.vectors(entries)  # before storing: an encoder failure stores nothing
        if self.pg is None:
            items = self.store.upsert(tenant, entries)
            self.index(tenant).upsert(items, full, short)
            self._save(tenant)
            return len(items)
        pg = self.pg.scoped(tenant)
        version = [0]

        def write(conn: Any, rows: list[tuple[int, EntryIn]]) -> None:
            pg.write(conn, *vector_rows(rows, full, short))
            version[0] = self.store.version_in(conn, tenant)

        items = self.store.upsert(tenant, entries, then=write, encoder=self.encoder.version)
        self._applied(tenant, version[0], lambda index: index.upsert(items))
        return len(items)

    def _applied(self, tenant: str, version: int, change: Any) -> None:
        """After a committed change made here: apply it to the entry map when it is the only
        change since the map was read, else re-read the map."""
        index = self.index(tenant)
        with index.lock:
            if index.version == version - 1:
                change(index)
                index.version = version
                return
        self.fresh_index(tenant)

    def ingest_faq(self, tenant: str, content: str, fmt: str, where: str = "upload") -> int:
        self.tenants.require(tenant)
        return self.upsert(tenant, parse_faq(content, fmt, where, self.settings.max_entry_chars))

    def ingest_document(
        self,
        tenant: str,
        doc_id: str,
        content: str,
        fmt: str,
        title: str = "",
        url: str = "",
        category: str = "",
        metadata: dict[str, str] | None = None,
    ) -> int:
        """Split a document into passages and replace its earlier passages."""
        self.tenants.require(tenant)
        passages = split_document(
            doc_id, content, fmt, title, url, category=category, metadata=metadata
        )
        old = set(self.store.document_passages(tenant, doc_id))
        count = self.upsert(tenant, passages)
        stale = sorted(old - {p.id for p in passages})
        if stale:
            self._delete(tenant, stale)
        return count

    def _delete(self, tenant: str, entry_ids: list[str]) -> list[int]:
        if self.pg is None:
            pks = self.store.delete(tenant, entry_ids)
            self.index(tenant).remove(pks)
            self._save(tenant)
            return pks
        pg = self.pg.scoped(tenant)

        version = [0]

        def drop(conn: Any, pks: list[int]) -> None:
            keys = np.asarray(pks, dtype=np.int64)
            pg.delete(conn, np.concatenate([2 * keys, 2 * keys + 1]))
            version[0] = self.store.version_in(conn, tenant)

        pks = self.store.delete(tenant, entry_ids, then=drop)
        if pks:
            self._applied(tenant, version[0], lambda index: index.remove(pks))
        return pks

    def delete(self, tenant: str, entry_id: str) -> int:
        """Delete an entry, or every passage of a document id."""
        self.tenants.require(tenant)
        ids = [entry_id, *self.store.document_passages(tenant, entry_id)]
        return len(self._delete(tenant, ids))


def load_sample(bot: Any, tenant: str, folder: Any) -> int:
    """Ingest the shipped sample knowledge base (FAQ JSONL and documents) into ``tenant``."""
    folder = Path(folder)
    n: int = bot.ingest_faq(tenant, (folder / "faq.jsonl").read_text(), "jsonl", "faq.jsonl")
    formats = {".md": "markdown", ".html": "html", ".txt": "text"}
    for path in sorted((folder / "docs").iterdir()):
        if path.suffix in formats:
            n += bot.ingest_document(
                tenant,
                path.stem,
                path.read_text(),
                formats[path.suffix],
                url=f"https://shop.larkspur.example/guides/{path.stem}",
            )
    return n
