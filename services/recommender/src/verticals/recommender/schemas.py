"""API models: items, events and recommendations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, field_validator

EventType = Literal["view", "click", "add_to_cart", "purchase"]
ItemId = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")


class ItemIn(BaseModel):
    """A catalog item; its text (title, description, category, tags) is embedded."""

    model_config = ConfigDict(extra="forbid")

    id: str = ItemId
    title: str = Field(min_length=1, max_length=500)
    description: str = Field("", max_length=10_000)
    category: str = Field("", max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=50)
    price: StrictFloat | None = Field(None, ge=0)
    in_stock: StrictBool = True
    attributes: dict[str, Any] = Field(default_factory=dict)

    def text(self) -> str:
        parts = [self.title, self.category, ", ".join(self.tags), self.description]
        return ". ".join(p.strip() for p in parts if p and p.strip())


class ItemOut(ItemIn):
    model_config = ConfigDict(extra="ignore")

    updated_at: datetime | None = None


class ItemBatch(BaseModel):
    items: list[ItemIn] = Field(min_length=1)


class IdBatch(BaseModel):
    ids: list[str] = Field(min_length=1)


class UpsertResult(BaseModel):
    created: int
    updated: int
    encoder_version: str


class DeleteResult(BaseModel):
    deleted: int
    missing: list[str]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=128)
    item_id: str = Field(min_length=1, max_length=128)
    type: EventType
    timestamp: datetime | None = None
    """Defaults to the time of receipt; naive times are read as UTC."""

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class EventBatch(BaseModel):
    events: list[EventIn] = Field(min_length=1)


class EventResult(BaseModel):
    accepted: int


class Recommendation(BaseModel):
    id: str
    title: str
    category: str
    price: float | None
    in_stock: bool
    score: float


class RecommendationResponse(BaseModel):
    user_id: str | None = None
    item_id: str | None = None
    variant: str
    model_version: str
    strategy: Literal[
        "personal", "cold_start_popular", "cold_start_newest", "cold_start_query", "similar"
    ]
    items: list[Recommendation]
