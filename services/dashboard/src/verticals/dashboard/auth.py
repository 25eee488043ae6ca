"""Who is looking at the dashboard: login sessions and the dependencies that scope each route.

Two kinds of people log in (``POST /api/login`` with a key; the answer sets an HttpOnly,
SameSite=Strict session cookie holding a random token; the server keeps only its hash):

- ``admin``: the dashboard's own admin key. Everything: every support tenant (read with the
  dashboard's support service key), models with promote and rollback, status, recommender.
- ``tenant``: a support tenant's admin key. That tenant's support panel only, read and answered
  with *their* key (the dashboard's service key is never used for them).

Anonymous callers get the page, ``/api/session`` and the news panel (the news monitor serves
those figures publicly itself); every other route answers 401. API clients may send the
dashboard admin key as ``X-API-Key`` instead of logging in.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request

from verticals.dashboard.settings import DashboardSettings
from verticals.serving.auth import is_admin_key

COOKIE = "verticals_dashboard_session"
MAX_SESSIONS = 10_000
"""Live sessions kept at most; the oldest is dropped first."""


@dataclass(frozen=True)
class Viewer:
    """A logged-in caller. ``support_key`` is what the dashboard sends to the support bot on
    their behalf: its own service key for ``admin``, the tenant's admin key for ``tenant``."""

    role: Literal["admin", "tenant"]
    support_key: str
    tenant: str | None = None
    expires: float = float("inf")


class Sessions:
    """Login sessions in this process's memory, by the SHA-256 of their random token (a restart
    logs everyone out; replicas behind a load balancer need sticky sessions)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._by_hash: dict[str, Viewer] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def start(self, viewer: Viewer) -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            self._by_hash = {h: v for h, v in self._by_hash.items() if v.expires > now}
            while len(self._by_hash) >= MAX_SESSIONS:
                del self._by_hash[next(iter(self._by_hash))]
            self._by_hash[self._hash(token)] = Viewer(
                viewer.role, viewer.support_key, viewer.tenant, now + self.ttl_s
            )
        return token

    def get(self, token: str | None) -> Viewer | None:
        if not token:
            return None
        with self._lock:
            viewer = self._by_hash.get(self._hash(token))
        return viewer if viewer is not None and viewer.expires > time.time() else None

    def end(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._by_hash.pop(self._hash(token), None)


def _settings(request: Request) -> DashboardSettings:
    settings: DashboardSettings = request.app.state.settings
    return settings


def is_dashboard_key(settings: DashboardSettings, key: str) -> bool:
    return is_admin_key(settings, key)


def admin_viewer(settings: DashboardSettings) -> Viewer:
    return Viewer("admin", settings.support_admin_key.get_secret_value())


def viewer(request: Request) -> Viewer | None:
    """The caller: a session cookie, the dashboard admin key in ``X-API-Key``, or None."""
    key = request.headers.get("x-api-key")
    if key:
        if is_dashboard_key(_settings(request), key):
            return admin_viewer(_settings(request))
        raise HTTPException(401, "invalid X-API-Key")
    sessions: Sessions = request.app.state.sessions
    return sessions.get(request.cookies.get(COOKIE))


def logged_in(found: Annotated[Viewer | None, Depends(viewer)]) -> Viewer:
    if found is None:
        raise HTTPException(401, "log in first (POST /api/login)")
    return found


def admin_only(found: Annotated[Viewer, Depends(logged_in)]) -> Viewer:
    if found.role != "admin":
        raise HTTPException(403, "this needs the dashboard admin key")
    return found


Anyone = Annotated[Viewer | None, Depends(viewer)]
LoggedIn = Annotated[Viewer, Depends(logged_in)]
AdminOnly = Annotated[Viewer, Depends(admin_only)]
