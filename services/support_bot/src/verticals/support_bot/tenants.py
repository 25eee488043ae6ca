"""Tenants and their keys: creation, key rotation, authentication (hashes only are stored)."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from verticals.serving.auth import hash_api_key, new_api_key
from verticals.support_bot.store import Store
from verticals.support_bot.text import InputError

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KEY_CACHE_S = 0.5
"""How long a replica trusts a tenant key it looked up: a key rotated through another replica
stops working here within this time. The lookup (one indexed query) costs about 0.3 ms on
SQLite, so it runs at most twice a second per key rather than on every request."""


class UnknownTenant(LookupError):
    pass


class Tenants:
    """Tenant rows (cached) and key lookups (cached for ``KEY_CACHE_S``); thread-safe."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._rows: dict[str, Any] = {}
        self._keys: dict[str, tuple[tuple[str, str], float]] = {}  # digest: (owner, expiry)
        self._lock = threading.RLock()

    def create(self, tenant: str, name: str = "") -> tuple[str, str]:
        """Returns (admin key, widget key); only their hashes are stored."""
        if not TENANT_ID.match(tenant):
            raise InputError(f"bad tenant id {tenant!r} (lowercase letters, digits, _ -)")
        if self.store.tenant(tenant):
            raise InputError(f"tenant {tenant!r} exists")
        self._rows.pop(tenant, None)
        admin, widget = new_api_key("sk"), new_api_key("wk")
        self.store.create_tenant(tenant, name or tenant, hash_api_key(admin), hash_api_key(widget))
        return admin, widget

    def rotate_keys(self, tenant: str, admin: bool = True, widget: bool = True) -> dict[str, str]:
        self.require(tenant)
        keys = {}
        if admin:
            keys["admin_key"] = new_api_key("sk")
        if widget:
            keys["widget_key"] = new_api_key("wk")
        self.store.set_keys(
            tenant,
            hash_api_key(keys["admin_key"]) if admin else None,
            hash_api_key(keys["widget_key"]) if widget else None,
        )
        with self._lock:
            self._keys.clear()
        return keys

    def authenticate(self, key: str) -> tuple[str, str] | None:
        """(tenant, ``admin`` | ``widget``) for a tenant key, else None; checked against the
        database at least every ``KEY_CACHE_S`` seconds, so revocation reaches every replica."""
        digest = hash_api_key(key)
        now = time.monotonic()
        with self._lock:
            cached = self._keys.get(digest)
        if cached and cached[1] > now:
            return cached[0]
        owner = self.store.key_owner(digest)
        with self._lock:
            if len(self._keys) > 10_000:  # only valid keys are cached; drop the expired ones
                self._keys = {k: v for k, v in self._keys.items() if v[1] > now}
            if owner:
                self._keys[digest] = (owner, now + KEY_CACHE_S)
            else:
                self._keys.pop(digest, None)
        return owner

    def row(self, tenant: str) -> Any:
        """The tenant's row, cached (tenants are created and calibrated through this object)."""
        row = self._rows.get(tenant)
        if row is None:
            row = self.store.tenant(tenant)
            if row is None:
                raise UnknownTenant(f"unknown tenant {tenant!r}")
            self._rows[tenant] = row
        return row

    def require(self, tenant: str) -> None:
        self.row(tenant)

    def forget(self, tenant: str | None = None) -> None:
        """Drop cached rows (one tenant's after its calibration changed, or all) and keys."""
        with self._lock:
            if tenant is None:
                self._rows.clear()
                self._keys.clear()
            else:
                self._rows.pop(tenant, None)
