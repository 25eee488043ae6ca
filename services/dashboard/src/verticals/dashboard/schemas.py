"""Request bodies of the dashboard's actions."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=512)
    """The dashboard admin key, or a support tenant's admin key."""


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    force: bool = False
    """Promote even when the candidate scores worse than the current model."""


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=20_000)
    close: bool = True
