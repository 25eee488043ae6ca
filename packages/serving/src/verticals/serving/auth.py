"""API keys: stored as SHA-256 hashes, compared in constant time, checked by a dependency."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

from fastapi import HTTPException, Security, status
from fastapi.security import APIKeyHeader

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False)


def new_api_key(prefix: str = "vk") -> str:
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def hash_api_key(key: str) -> str:
    """Keys are random 192-bit tokens, so a plain SHA-256 is the right hash (no salt needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key), stored_hash)


def require_admin_key(get_expected: Callable[[], str]) -> Callable[[str | None], str]:
    """A dependency that accepts only the service's admin key (from its settings)."""

    def check(key: str | None = Security(API_KEY_HEADER)) -> str:
        # compared as bytes: compare_digest refuses non-ASCII text (a 500 for a key like "é")
        if not key or not hmac.compare_digest(key.encode(), get_expected().encode()):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid X-API-Key")
        return key

    return check
