"""The dashboard's one settings object (environment prefix ``VERTICALS_DASHBOARD_``).

The other services are reached over HTTP. By default their URLs are the local ones, on the
ports the suite gives them (``VERTICALS_NEWS_PORT`` etc. when set, since ``verticals up`` runs
every service with the same environment), and the support bot's admin key is the one the
support bot itself reads (``VERTICALS_SUPPORT_ADMIN_API_KEY``) unless set here.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from verticals.serving.settings import DEFAULT_ADMIN_KEY, ServiceSettings, load_settings


def _local(port_variable: str, default_port: int) -> str:
    return f"http://127.0.0.1:{os.environ.get(port_variable) or default_port}"


class DashboardSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="VERTICALS_DASHBOARD_", frozen=True, extra="ignore", populate_by_name=True
    )

    port: int = 8040
    data_dir: Path = Path("var/dashboard")

    news_url: str = Field(default_factory=lambda: _local("VERTICALS_NEWS_PORT", 8030))
    support_url: str = Field(default_factory=lambda: _local("VERTICALS_SUPPORT_PORT", 8020))
    recommender_url: str = Field(default_factory=lambda: _local("VERTICALS_RECOMMENDER_PORT", 8003))
    support_admin_key: SecretStr = Field(
        SecretStr(DEFAULT_ADMIN_KEY),
        validation_alias=AliasChoices(
            "support_admin_key",
            "VERTICALS_DASHBOARD_SUPPORT_ADMIN_KEY",
            "VERTICALS_SUPPORT_ADMIN_API_KEY",
        ),
    )
    """The support bot's service admin key: used only for a caller logged in with the
    dashboard's own admin key (it reads every tenant's handoffs and entries)."""
    support_tenants: list[str] = Field(default_factory=list)
    """Tenants shown; empty: every tenant the support bot lists."""
    registry_dir: Path | None = None
    """The model registry; None: the core's (``VERTICALS_REGISTRY_DIR``, default var/registry)."""
    session_hours: float = Field(8.0, gt=0, le=168)
    """A login (session cookie) lasts this long; a restart ends every session."""
    upstream_timeout_s: float = Field(3.0, gt=0)
    refresh_seconds: float = Field(5.0, ge=1)
    """How often the page refreshes the news chart and the other panels."""
    trend_buckets: int = Field(96, ge=2, le=2000)
    """The chart shows this many of the latest time buckets."""
    kb_entries: int = Field(20, ge=1, le=1000)
    """Knowledge-base entries listed per tenant."""

    @model_validator(mode="after")
    def _support_key_outside_local(self) -> DashboardSettings:
        if (
            self.environment != "local"
            and self.support_admin_key.get_secret_value() == DEFAULT_ADMIN_KEY
        ):
            raise ValueError(
                "support_admin_key must be set outside local use "
                "(VERTICALS_DASHBOARD_SUPPORT_ADMIN_KEY or VERTICALS_SUPPORT_ADMIN_API_KEY)"
            )
        return self

    def upstreams(self) -> dict[str, str]:
        return {
            "news": self.news_url.rstrip("/"),
            "support": self.support_url.rstrip("/"),
            "recommender": self.recommender_url.rstrip("/"),
        }


def get_settings(**overrides: object) -> DashboardSettings:
    return load_settings(DashboardSettings, **overrides)
