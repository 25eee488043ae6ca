"""API keys: stored as SHA-256 hashes, compared in constant time, checked by one dependency.

``AdminKey`` is every service's admin-key dependency: the ``X-API-Key`` header must be the
service's ``admin_api_key`` (its settings in ``app.state.settings``), else 401."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False)


def new_api_key(prefix: str = "vk") -> str:
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def hash_api_key(key: str) -> str:
    """Keys are random 192-bit tokens, so a plain SHA-256 is the right hash (no salt needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key), stored_hash)


def is_admin_key(settings: Any, key: str) -> bool:
    """Whether ``key`` is the service's admin key. Compared as bytes: ``compare_digest``
    refuses non-ASCII text (a 500 for a key like "é")."""
    expected = settings.admin_api_key.get_secret_value()
    return hmac.compare_digest(key.encode(), expected.encode())


async def require_admin_key(request: Request, key: str | None = Security(API_KEY_HEADER)) -> str:
    """The dependency behind ``AdminKey``."""
    if not key or not is_admin_key(request.app.state.settings, key):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid X-API-Key")
    return key


AdminKey = Annotated[str, Depends(require_admin_key)]
"""A route parameter ``_: AdminKey`` admits only the service's admin key."""
