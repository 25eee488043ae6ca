"""The recommender's one settings object (environment prefix ``VERTICALS_RECOMMENDER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from verticals.serving.settings import ServiceSettings, load_settings, shared_dir

SHARED_DIR = shared_dir("recommender")
EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")


class ScorerWeights(BaseModel):
    """How one scorer blends its signals (each signal is scaled to [0, 1] first). The defaults
    were tuned on the MovieLens validation split (``verticals recommend eval``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: float = Field(1.0, ge=0)
    """Cosine of the user vector (or query vector) and the item vector."""
    popularity: float = Field(0.15, ge=0)
    cooccurrence: float = Field(1.0, ge=0)
    """Item-to-item co-occurrence with the user's recent items."""
    mmr_lambda: float = Field(0.9, ge=0, le=1)
    """MMR re-ranking: 1 keeps relevance order, lower values trade relevance for diversity."""


class TowerWeights(BaseModel):
    """The blend that re-ranks the tower's nearest items (each signal in [0, 1]; tuned on the
    MovieLens validation items with the seen filter, ``make bench-recommend``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tower: float = Field(1.0, ge=0)
    """The tower's score, as exp(score - the user's best score)."""
    text: float = Field(8.0, ge=0)
    """Cosine of the user's text vector (recency-weighted mean of item vectors) and the item's."""
    popularity: float = Field(0.2, ge=0)
    cooccurrence: float = Field(4.0, ge=0)


class RecommenderSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="VERTICALS_RECOMMENDER_", frozen=True, extra="ignore", env_nested_delimiter="__"
    )

    port: int = 8003
    encoder_task: str = "recommender-encoder"
    event_weights: dict[str, float] = Field(
        default_factory=lambda: {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}
    )
    """Weight of each event type in user vectors, popularity and co-occurrence."""
    user_half_life_hours: float = Field(72.0, ge=0)
    """Recency decay of a user's vector; 0 switches decay off."""
    popularity_half_life_hours: float = Field(168.0, ge=0)
    """Trending: decay of the popularity counts; 0 means all-time counts."""
    cooccurrence_window: int = Field(10, gt=0)
    """An item co-occurs with the user's last N distinct items."""
    exact_index_max_items: int = Field(20_000, gt=0)
    """Exact (flat) FAISS index up to this many items, IVF above."""
    ivf_nprobe: int = Field(32, gt=0)
    """IVF lists probed per query (recall against speed: see bench/results/recommender.json)."""
    faiss_threads: int = Field(1, ge=0)
    catalog_refresh_s: float = Field(0.5, ge=0)
    """On PostgreSQL: how often a replica reads the catalog version (one primary-key read) and
    applies the item changes other replicas made since, to its FAISS index; 0: only at start."""
    candidates: int = Field(200, gt=0)
    """Candidates taken from each source before blending (the old scorer: FAISS, co-occurrence,
    popularity; the tower: its nearest items, the depth chosen on the MovieLens validation)."""
    max_batch: int = Field(1000, gt=0)
    """Largest number of items or events accepted in one request."""
    max_k: int = Field(100, gt=0)
    max_event_skew_s: float = Field(300.0, ge=0)
    """Events timed more than this many seconds after their receipt are rejected (and skipped
    when an older log holds some), so a far-future event cannot erase real popularity."""
    exclude_purchased: bool = True
    exclude_seen: bool = True
    """Leave out every item the user had any event on (views too), not only purchases."""
    variant_a: ScorerWeights = ScorerWeights()
    variant_b: ScorerWeights = ScorerWeights(text=1.0, popularity=0.1, cooccurrence=0.0)
    """The challenger: content-only (text and a little popularity, no co-occurrence)."""
    variant_b_share: float = Field(0.5, ge=0, le=1)
    """Share of users (by a hash of their id) served by variant B; 0 switches the test off."""
    ab_salt: str = "ab-1"
    tower_task: str = "recommender-tower"
    """Registry task of the learnt user tower; served (variant A) once a version is promoted."""
    tower_target_events: tuple[str, ...] = ("click", "add_to_cart", "purchase")
    """Event types the tower learns to predict; other events (views) are context it reads."""
    tower_weights: TowerWeights = TowerWeights()
    """The blend served with the tower (tuned on MovieLens validation, seen filter)."""
    tower_cache_users: int = Field(10_000, ge=0)
    """Users whose tower vector, nearest items and their tower and text scores are kept from one
    request to the next until their next event (about 7 kB each; least recently served out)."""
    sample_catalog: Path | None = SHARED_DIR / "sample_catalog.jsonl"
    """Loaded by ``verticals recommend up`` when the catalog is empty."""


def get_settings(**overrides: object) -> RecommenderSettings:
    """The service's settings from the environment (a bad value: one line naming it)."""
    return load_settings(RecommenderSettings, **overrides)
