"""API models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from verticals.support_bot.text import META_MAX_KEYS, META_MAX_VALUE

SESSION_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
FilterKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
MetaKey = Annotated[
    str, StringConstraints(pattern=r"^(?!(?:category|tags|kind)$)[A-Za-z0-9_.-]{1,64}$")
]
"""A metadata key: ``category``, ``tags`` and ``kind`` are the entry's own fields (the
lookahead needs ``regex_engine="python-re"`` on the models that use it)."""
MetaValue = Annotated[str, StringConstraints(max_length=META_MAX_VALUE)]
CLOSED = {"additionalProperties": False}
"""Keys outside the pattern are invalid in the schema too (``patternProperties`` alone would
allow them with any value)."""
Filter = Annotated[
    Annotated[dict[FilterKey, MetaValue], Field(max_length=META_MAX_KEYS, json_schema_extra=CLOSED)]
    | None,
    Field(
        description="Only entries whose metadata has every one of these key/values (``category``, "
        "``kind`` and ``tags``, which matches one tag, are filterable too), e.g. "
        '``{"product": "kettle", "category": "returns"}``.',
    ),
]
Metadata = Annotated[
    dict[MetaKey, MetaValue],
    Field(
        max_length=META_MAX_KEYS,
        json_schema_extra=CLOSED,
        description="Any key/value metadata (product, language, document type ...), "
        "filterable with ``filter``; ``category``, ``tags`` and ``kind`` are fields of their own.",
    ),
]
MAX_ROW_ID = 2**31 - 1
"""Row ids are SQL INTEGER columns (32-bit on PostgreSQL): a larger id is a 422, not an overflow
in the query (a 500)."""


class TenantCreate(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field("", max_length=200)


class WhoAmI(BaseModel):
    role: Literal["root", "admin", "widget"]
    tenant: str | None = None


class TenantKeys(BaseModel):
    tenant: str
    admin_key: str | None = None
    widget_key: str | None = None


class FaqEntry(BaseModel):
    model_config = ConfigDict(regex_engine="python-re")  # MetaKey's lookahead

    id: str = Field(min_length=1, max_length=128)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    category: str = ""
    tags: list[str] = []
    url: str = ""
    paraphrases: list[str] = []
    metadata: Metadata = {}


class FaqBatch(BaseModel):
    entries: list[FaqEntry] = Field(min_length=1)


class DocumentIn(BaseModel):
    model_config = ConfigDict(regex_engine="python-re")  # MetaKey's lookahead

    id: str = Field(min_length=1, max_length=100)
    content: str = Field(min_length=1)
    format: Literal["markdown", "html", "text"] = "markdown"
    title: str = ""
    url: str = ""
    category: str = ""
    metadata: Metadata = {}


class FromRow(BaseModel):
    """An API model read straight from a store row (``Model.model_validate(row)``): a NULL
    column reads as the field's default, a timestamp as ISO text."""

    model_config = ConfigDict(from_attributes=True)

    @field_validator("*", mode="before")
    @classmethod
    def _column(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        field = cls.model_fields[info.field_name or ""]
        if value is None and not field.is_required():
            return field.get_default(call_default_factory=True)
        return value


class EntryOut(FromRow):
    id: str = Field(validation_alias=AliasChoices("entry_id", "id"))
    kind: str
    title: str
    heading: str
    body: str
    category: str
    tags: list[str] = []
    url: str
    source: str
    paraphrases: list[str] = []
    metadata: dict[str, str] = Field({}, validation_alias=AliasChoices("meta", "metadata"))


class Changed(BaseModel):
    tenant: str
    count: int


class ChatRequest(BaseModel):
    tenant: str = Field(min_length=1, max_length=64)
    session_id: str = Field(pattern=SESSION_PATTERN)
    message: str = Field(min_length=1, max_length=20_000, pattern=r"\S")
    """At least one character that is not a space (a blank message is a 422)."""
    filter: Filter = None


class SessionIn(BaseModel):
    tenant: str = Field(min_length=1, max_length=64)


class SessionOut(BaseModel):
    tenant: str
    session_id: str
    session_token: str
    """Sent as ``X-Session-Token`` to read the transcript back with a widget key."""


class Citation(BaseModel):
    id: str
    title: str
    heading: str = ""
    url: str = ""


class ChatResponse(BaseModel):
    kind: Literal["answer", "clarify", "handoff"]
    text: str
    confidence: float
    citations: list[Citation]
    session_id: str
    message_id: int
    handoff_id: int | None = None
    intent: dict[str, Any] | None = None
    reworded: bool = False


class MessageOut(FromRow):
    id: int
    role: str
    text: str
    kind: str
    citations: list[Citation] = []
    created_at: str


class HandoffOut(FromRow):
    id: int
    tenant: str = Field(validation_alias=AliasChoices("tenant_id", "tenant"))
    session_id: str
    question: str
    reason: str
    status: str
    created_at: str
    transcript: list[MessageOut] = []


class StaffReply(BaseModel):
    tenant: str
    text: str = Field(min_length=1, max_length=20_000)
    entry_id: str | None = None
    """The knowledge-base entry that resolved the question (becomes fine-tuning data)."""
    close: bool = Field(True, strict=True)


class FeedbackIn(BaseModel):
    tenant: str
    session_id: str = Field(pattern=SESSION_PATTERN)
    message_id: int = Field(ge=1, le=MAX_ROW_ID)
    rating: Literal["up", "down"]


class SearchIn(BaseModel):
    """``POST /v1/tenants/{tenant}/search``: what the bot would answer, and why."""

    question: str = Field(min_length=1, max_length=20_000, pattern=r"\S")
    k: int = Field(5, ge=1, le=50)
    filter: Filter = None


class SearchCandidate(BaseModel):
    entry_id: str
    kind: str
    question: str
    """The entry's title (an FAQ's question, a passage's document title)."""
    heading: str = ""
    answer: str
    url: str = ""
    score: float
    """The confidence the policy decides on: the reranker's relevance probability when the
    candidates were reranked, else the cosine to the question."""
    cosine: float
    fused: float
    """Reciprocal-rank-fusion score of the dense and BM25 rankings."""
    prob: float
    """Softmax of the cosines over the fused top five (the clarify margin without a reranker)."""
    relevance: float | None = None


class SearchOut(BaseModel):
    decision: Literal["answer", "clarify", "handoff"]
    confidence: float
    threshold: float
    margin: float
    calibrated: bool
    candidates: list[SearchCandidate]


class WidgetConfig(BaseModel):
    """What the widget shows before the first question."""

    tenant: str
    name: str
    suggestions: list[str]
    """A few questions from the knowledge base (one FAQ per category, in the base's order)."""


class HandoffIn(BaseModel):
    """The visitor asks for a person (the widget's "Talk to a person")."""

    tenant: str = Field(min_length=1, max_length=64)
    session_id: str = Field(pattern=SESSION_PATTERN)
    message: str = Field("", max_length=2_000)


class HandoffOpened(BaseModel):
    handoff_id: int
    message_id: int
    """The bot's notice in the transcript."""
    text: str
