"""The base of every service's one settings object."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from pydantic import SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from verticals.core.settings import SettingsError, describe_validation_error

S = TypeVar("S", bound="ServiceSettings")
DEFAULT_ADMIN_KEY = "change-me"
MIN_KEY_CHARS = 20
MIN_KEY_BITS = 64.0
"""A production admin key needs this many characters and this much estimated entropy
(characters x Shannon bits per character): ``secrets.token_urlsafe(32)`` has about 200."""


def shared_dir(service: str) -> Path:
    """``shared/<service>`` of the checkout the packages are installed from (samples, rules,
    default models: data, no code)."""
    return Path(__file__).resolve().parents[5] / "shared" / service


def key_weakness(key: str) -> str | None:
    """Why ``key`` is too weak for production use, or None."""
    if key != key.strip() or any(c.isspace() for c in key):
        return "must not contain spaces"
    if DEFAULT_ADMIN_KEY in key.lower():
        return "must not contain the default key"
    if len(key) < MIN_KEY_CHARS:
        return f"must be at least {MIN_KEY_CHARS} characters long"
    counts = Counter(key).values()
    bits = sum(n * math.log2(len(key) / n) for n in counts)
    if bits < MIN_KEY_BITS:
        return f"is too predictable ({bits:.0f} bits estimated, {MIN_KEY_BITS:.0f} needed)"
    return None


class ServiceSettings(BaseSettings):
    """Common settings. A service subclasses it and sets its own ``env_prefix``."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    environment: Literal["local", "production"] = "local"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("var")
    database_url: str = ""
    """SQLAlchemy URL; empty means SQLite at ``<data_dir>/<service>.db``."""
    admin_api_key: SecretStr = SecretStr(DEFAULT_ADMIN_KEY)
    """In production: at least ``MIN_KEY_CHARS`` random characters, e.g.
    ``python -c 'import secrets; print(secrets.token_urlsafe(32))'``."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_request_bytes: int = 1_000_000
    """Largest request body, counted as it arrives whatever the transfer encoding (413 past)."""
    header_timeout_s: float = 10.0
    """A connection must deliver a request's complete head (request line and headers) this soon
    after it opens or after its previous response; otherwise it is closed."""
    body_timeout_s: float = 30.0
    """Longest wait for the next piece of a request body (408 and close past it)."""
    keep_alive_s: int = 5
    """An idle keep-alive connection is closed after this many seconds."""

    @field_validator("*")
    @classmethod
    def _ports_in_range(cls, value: Any, info: ValidationInfo) -> Any:
        """Every ``port`` and ``*_port`` field of every service: a real TCP port. The server's
        own ``port`` may also be 0: a free port chosen by the kernel, printed once listening."""
        name = info.field_name or ""
        lowest = 0 if name == "port" else 1
        is_port = name == "port" or name.endswith("_port")
        if is_port and isinstance(value, int) and not lowest <= value <= 65535:
            raise ValueError(f"must be a TCP port between {lowest} and 65535")
        return value

    @field_validator("header_timeout_s", "body_timeout_s", "keep_alive_s", "max_request_bytes")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("admin_api_key")
    @classmethod
    def _strong_key_in_production(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if info.data.get("environment", "local") != "local":
            weakness = key_weakness(value.get_secret_value())
            if weakness:
                raise ValueError(f"a production admin key {weakness}")
        return value

    def sqlalchemy_url(self, service: str) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / f'{service}.db'}"


def secret_fields(cls: type[BaseSettings]) -> set[str]:
    """Names of the fields holding secrets (``SecretStr``, optional or not)."""
    return {
        name
        for name, field in cls.model_fields.items()
        if field.annotation is SecretStr or SecretStr in get_args(field.annotation)
    }


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build settings from the environment; a bad value raises an error naming the variable
    (one line, secrets never echoed, no chained pydantic error that would print them)."""
    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        message = describe_validation_error(exc, prefix, secret_fields(cls))
    raise SettingsError(message)
