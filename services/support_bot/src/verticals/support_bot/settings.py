"""The support bot's one settings object (environment prefix ``VERTICALS_SUPPORT_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from verticals.serving.settings import ServiceSettings, load_settings, shared_dir

SERVICE = "support_bot"


class SupportSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VERTICALS_SUPPORT_", frozen=True, extra="ignore")

    port: int = 8020
    encoder_task: str = "support-encoder"
    """Registry task of the encoder; the base all-MiniLM-L6-v2 is used until one is promoted."""
    encoder_form: Literal["torch", "onnx", "onnx-int8"] = "onnx-int8"
    """How the encoder runs. ONNX Runtime int8 (exported on first use) encodes short queries
    about 2x faster than torch fp32 at the same MRR on the sample questions (0.8895 vs 0.8896)."""
    reranker_task: str = "support-reranker"
    """Registry task of the cross-encoder reranker (``verticals support train-reranker``); when
    it has a current version, the fused top candidates are re-ordered by it and its relevance
    probability becomes the confidence the handoff threshold applies to."""
    rerank: bool = True
    """Use the reranker when one is registered."""
    rerank_top: int = Field(5, gt=0, le=50)
    """Fused candidates the reranker reads."""
    rerank_max_length: int = Field(64, gt=8, le=512)
    """Tokens of query plus passage the reranker reads (shorter: faster); the shipped training
    uses 64."""
    rerank_gap: float = Field(1.0, ge=0, le=2)
    """The reranker reads all ``rerank_top`` candidates only when the fused first one's cosine
    leads the next other entry's by less than this, else the first alone (its relevance still
    decides). 1.0: always all."""
    rerank_threshold: float = Field(0.5, ge=0, le=1)
    """Reranker probability below which an uncalibrated tenant hands off."""
    rescore_encoder: str = ""
    """A second, stronger sentence encoder that re-scores the fused top candidates
    (``rescoring.py``): a folder, a model id, or ``all-mpnet-base-v2`` (fetched once from its
    PyPI parts, 438 MB). Empty: off (the default; nothing is downloaded)."""
    rescore_form: Literal["torch", "onnx", "onnx-int8"] = "onnx-int8"
    """How the second encoder runs (int8 ONNX: exported once into the cache folder; for mpnet
    hit@1 0.782 against fp32's 0.787 on the Python FAQ, about twice as fast)."""
    rescore_top: int = Field(10, gt=0, le=200)
    """Fused candidates the second encoder re-scores."""
    rescore_weight: float = Field(1.0, ge=0)
    """Weight of the second encoder's cosine beside the first's in the candidates' score.
    ``rescore_top`` and this were chosen on the Python FAQ (mpnet over the fused top 10, equal
    weights: hit@1 0.810; top 5: 0.793; weight 2: 0.799; mpnet alone: 0.787)."""
    rescore_gap: float = Field(0.04, ge=0, le=2)
    """Only a query whose fused first candidate's cosine leads the best other entry's by less
    than this is re-scored (one in three of the Python FAQ's questions at 0.04, with all of the
    gain; 1.0: every query)."""
    rescore_max_length: int = Field(128, gt=8, le=512)
    """Tokens of each text the second encoder reads."""
    rescore_student: bool = False
    """Read the questions with the second encoder's distilled student (registry task
    ``rescore_student_task``, distilled from this encoder and form: ``verticals support
    distil``): MiniLM's cost per question instead of the second encoder's. Off by default: the
    student trained here keeps only part of the second encoder's held-out gain (README)."""
    rescore_student_task: str = "support-rescore-student"
    rescore_student_form: Literal["torch", "onnx", "onnx-int8"] = "onnx-int8"
    rescore_cache_dir: Path | None = None
    """Where the second encoder's entry vectors are cached, one file per encoder name, keyed by
    the SHA-1 of each text (content-addressed: safe to share between tenants, data folders and
    runs); default ``<data_dir>/support_index/rescore``."""
    knowledge_threshold: bool = True
    """An uncalibrated tenant's threshold is derived from its own knowledge base (pseudo-queries
    made from its entries, ``policy.KnowledgeThresholds``) instead of the fixed defaults."""
    pseudo_queries: int = Field(64, gt=0, le=1000)
    """Entries sampled to make the pseudo-queries."""
    pseudo_quantile: float = Field(0.75, ge=0, le=1)
    """Quantile of the best other entry's confidence over the pseudo-queries that becomes the
    threshold. Chosen on the Python FAQ and FiQA (the int8 encoder, no reranker): 0.75 answers
    about 60% of their real questions (precision 0.83 and 0.75); 0.5 answers 73% (0.83, 0.69),
    0.9 45% (0.89, 0.78). The Debian and Savvly FAQs were not looked at."""
    pseudo_min_entries: int = Field(20, gt=0)
    """Below this many entries a tenant keeps the fixed default threshold."""
    intent_task_prefix: str = "support-intent-"
    """A tenant's optional intent classifier is the registry task ``<prefix><tenant>``."""
    handoff_threshold: float = Field(0.3, ge=0, le=1)
    """Confidence below which the bot hands off; replaced by a tenant's calibrated value."""
    ambiguity_margin: float = Field(0.1, ge=0, le=1)
    """Clarify when the top two candidates' probabilities are closer than this (Rasa: 0.1)."""
    temperature: float = Field(0.02, gt=0)
    """Softmax temperature turning the top candidates' cosine similarities into probabilities.
    On the sample questions 0.02 asks back on 7 of 103 in-scope questions (2 of them with a wrong
    top hit); 0.05 on 11 (4 wrong)."""
    candidates: int = Field(30, gt=0, le=200)
    vector_store: Literal["auto", "faiss", "pgvector"] = "auto"
    """Where the entry vectors live. ``auto``: pgvector when the database is PostgreSQL with
    the extension (searched in the database, shared live by every replica), else FAISS in each
    process (rebuilt at start). ``pgvector`` without the extension is an error at start."""
    hnsw_ef_search: int = Field(40, gt=0, le=1000)
    """pgvector: HNSW candidate list per search (at least the number of vectors asked for)."""
    exact_search_max: int = Field(8_000, gt=0)
    """Dense search is exact (flat) up to this many vectors (two per entry); a larger knowledge
    base gets an IVF index (probing 16 lists), trained once when it grows past the limit."""
    rrf_k: int = Field(60, gt=0)
    """Reciprocal rank fusion constant and per-retriever weights, chosen on the validation half
    of the sample question set with the int8 encoder (validation MRR 0.883; k=10 with BM25 at
    0.3, the best for the fp32 encoder, gave 0.876)."""
    dense_weight: float = Field(1.0, ge=0)
    bm25_weight: float = Field(0.1, ge=0)
    intent_weight: float = Field(0.5, ge=0)
    """RRF bonus (as a weight at rank 1) for entries of the predicted intent's category."""
    session_turns: int = Field(6, ge=0, le=50)
    max_message_chars: int = Field(2000, gt=0)
    max_entry_chars: int = Field(20_000, gt=0)
    max_entries_per_request: int = Field(5_000, gt=0)
    redact_pii: bool = True
    """Redact e-mail addresses, phone and card numbers in logs and stored transcripts."""
    llm_url: str = ""
    """An OpenAI-compatible base URL (``.../v1``) to reword answers; empty: extractive only."""
    llm_model: str = "gpt-4o-mini"
    llm_api_key: SecretStr = SecretStr("")
    llm_timeout_s: float = Field(8.0, gt=0)
    webhook_url: str = ""
    """POSTed a JSON body for every new handoff when set."""
    cors_origins: tuple[str, ...] = ("*",)
    sample_dir: Path = shared_dir("support_bot")
    """The shipped sample knowledge base (``verticals support up``)."""

    def index_dir(self) -> Path:
        return self.data_dir / "support_index"


def get_settings(**overrides: object) -> SupportSettings:
    """The service's settings from the environment (a bad value: one line naming it)."""
    return load_settings(SupportSettings, **overrides)
