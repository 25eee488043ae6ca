"""Request bodies of the dashboard's actions."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=512, pattern=r"^[!-~]([ -~]*[!-~])?$")
    """The dashboard admin key, or a support tenant's admin key: printable ASCII, no space at
    either end (no HTTP header can carry one there, and no key has one)."""


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    force: bool = Field(False, strict=True)
    """Promote even when the candidate scores worse than the current model."""

    @field_validator("version", mode="before")
    @classmethod
    def _a_json_number(cls, value: object) -> object:
        """A JSON integer (``2`` or ``2.0``), not a string or a boolean."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be an integer")
        return value


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=20_000)
    close: bool = Field(True, strict=True)


class FaqEditIn(BaseModel):
    """One FAQ entry, created or replaced from the knowledge-base panel."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128, pattern=r"^[^/\s]+$")
    question: str = Field(min_length=1, max_length=2_000)
    answer: str = Field(min_length=1, max_length=17_000)
    """With the question, within the support bot's 20,000 characters per entry."""
    category: str = Field("", max_length=100)
    url: str = Field("", max_length=2_000)


class SearchIn(BaseModel):
    """The "test a question" panel."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2_000)
    k: int = Field(5, ge=1, le=20)
