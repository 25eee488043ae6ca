"""A tenant's knowledge: entries (FAQs, document passages) and the lifecycle of its indexes
(build, persist, load, rebuild when the encoder or the stored entries changed)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verticals.support_bot.index import TenantIndex
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


class Knowledge:
    """Entries in the store and, in step with them, one ``TenantIndex`` per tenant."""

    def __init__(
        self,
        settings: SupportSettings,
        store: Store,
        encoder: Any,
        tenants: Tenants,
        persist: bool = True,
    ) -> None:
        self.settings = settings
        self.store = store
        self.encoder = encoder
        self.tenants = tenants
        self.persist = persist
        self.indexes: dict[str, TenantIndex] = {}
        self._lock = threading.RLock()

    # indexes -------------------------------------------------------------------------------
    def _manifest(self) -> dict[str, Any]:
        return {"encoder": self.encoder.version, "dimension": self.encoder.dimension}

    def load(self) -> dict[str, str]:
        """Load every tenant's saved index, rebuilding those that are missing or stale: another
        encoder, or entries that differ from the database's (a replica wrote them)."""
        self.tenants.forget()
        how = {}
        for tenant in self.store.tenants():
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
        return how

    def index(self, tenant: str) -> TenantIndex:
        with self._lock:
            index = self.indexes.get(tenant)
            if index is None:
                self.tenants.require(tenant)
                index = self.indexes[tenant] = self._new_index()
            return index

    def _new_index(self) -> TenantIndex:
        return TenantIndex(self.encoder.dimension, self.settings.exact_search_max)

    def rebuild(self, tenant: str, entries: dict[int, EntryIn] | None = None) -> int:
        """Re-encode a tenant's entries into fresh indexes (after an encoder change)."""
        self.tenants.require(tenant)
        if entries is None:
            entries = {e.pk: e.to_entry() for e in self.store.entries(tenant)}
        index = self._new_index()
        items = list(entries.items())
        if items:
            index.upsert(items, *self.vectors([e for _, e in items]))
        with self._lock:
            self.indexes[tenant] = index
        self._save(tenant)
        return len(items)

    def vectors(self, entries: Sequence[EntryIn]) -> tuple[np.ndarray, np.ndarray]:
        """Full-text vectors and question vectors (passages reuse their full-text vector)."""
        full = self.encoder.encode([e.index_text() for e in entries])
        short = full.copy()
        rows = [i for i, e in enumerate(entries) if e.short_text()]
        if rows:
            short[rows] = self.encoder.encode([entries[i].short_text() or "" for i in rows])
        return full, short

    def _save(self, tenant: str) -> None:
        if self.persist:
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
        vectors = self.vectors(entries)  # before storing: an encoder failure stores nothing
        items = self.store.upsert(tenant, entries)
        self.index(tenant).upsert(items, *vectors)
        self._save(tenant)
        return len(items)

    def ingest_faq(self, tenant: str, content: str, fmt: str, where: str = "upload") -> int:
        self.tenants.require(tenant)
        return self.upsert(tenant, parse_faq(content, fmt, where, self.settings.max_entry_chars))

    def ingest_document(
        self, tenant: str, doc_id: str, content: str, fmt: str, title: str = "", url: str = ""
    ) -> int:
        """Split a document into passages and replace its earlier passages."""
        self.tenants.require(tenant)
        passages = split_document(doc_id, content, fmt, title, url)
        old = set(self.store.document_passages(tenant, doc_id))
        count = self.upsert(tenant, passages)
        stale = sorted(old - {p.id for p in passages})
        if stale:
            self.index(tenant).remove(self.store.delete(tenant, stale))
            self._save(tenant)
        return count

    def delete(self, tenant: str, entry_id: str) -> int:
        """Delete an entry, or every passage of a document id."""
        self.tenants.require(tenant)
        ids = [entry_id, *self.store.document_passages(tenant, entry_id)]
        pks = self.store.delete(tenant, ids)
        self.index(tenant).remove(pks)
        self._save(tenant)
        return len(pks)


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
