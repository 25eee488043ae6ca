"""The base of every service's one settings object."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from verticals.core.settings import SettingsError, describe_validation_error

S = TypeVar("S", bound="ServiceSettings")
DEFAULT_ADMIN_KEY = "change-me"


class ServiceSettings(BaseSettings):
    """Common settings. A service subclasses it and sets its own ``env_prefix``."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    environment: Literal["local", "production"] = "local"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("var")
    database_url: str = ""
    """SQLAlchemy URL; empty means SQLite at ``<data_dir>/<service>.db``."""
    admin_api_key: SecretStr = SecretStr(DEFAULT_ADMIN_KEY)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_request_bytes: int = 1_000_000

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> ServiceSettings:
        if (
            self.environment != "local"
            and self.admin_api_key.get_secret_value() == DEFAULT_ADMIN_KEY
        ):
            raise ValueError("admin_api_key must be changed outside local use")
        return self

    def sqlalchemy_url(self, service: str) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / f'{service}.db'}"


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build settings from the environment; a bad value raises an error naming the variable."""
    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        raise SettingsError(describe_validation_error(exc, prefix)) from exc
