"""Message and API models: the input news item and the alert (the enriched record is built in
``pipeline.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_ENTITY_CHARS = 200


class NewsItem(BaseModel):
    """One news item as published on the input topic (JSON, UTF-8)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=200)
    published_at: datetime
    source: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=1000)
    body: str | None = Field(None, max_length=100_000)
    tickers: list[str] = Field(default_factory=list, max_length=50)
    entities: list[str] = Field(default_factory=list, max_length=50)
    lang: str = Field("en", min_length=2, max_length=16)

    @field_validator("published_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @field_validator("tickers")
    @classmethod
    def _tickers(cls, value: list[str]) -> list[str]:
        out = []
        for t in value:
            t = t.strip().upper()
            if not t or len(t) > 16 or not all(c.isalnum() or c in ".-:" for c in t):
                raise ValueError(f"invalid ticker {t!r}")
            out.append(t)
        return out

    @field_validator("entities")
    @classmethod
    def _entities(cls, value: list[str]) -> list[str]:
        """Bounded: an entity becomes an alert key (``entity:<name>``, a 300-character column)."""
        for e in value:
            if len(e) > MAX_ENTITY_CHARS:
                raise ValueError(f"entity over {MAX_ENTITY_CHARS} characters: {e[:40]!r}...")
        return value


class Evidence(BaseModel):
    id: str
    title: str
    published_at: datetime
    negative_probability: float


class Alert(BaseModel):
    id: str
    rule: str
    metric: str
    key: str
    window_start: datetime
    window_end: datetime
    total: int
    negative: int
    negative_share: float
    baseline: float
    """EWMA of the metric over this key's earlier windows."""
    baseline_std: float
    score: float
    """z-score of the window's metric against the baseline."""
    evidence: list[Evidence]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
