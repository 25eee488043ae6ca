"""``SupportBot``: the one service object the API and the CLI share, a thin front over the
rooms that do the work:

- ``tenants``: tenants and their keys (:mod:`verticals.support_bot.tenants`);
- ``knowledge``: entries and the index lifecycle (:mod:`verticals.support_bot.knowledge`);
- ``retriever``: dense, BM25 and their fusion (:mod:`verticals.support_bot.retrieval`), then the
  second stage: a second encoder (:mod:`verticals.support_bot.rescoring`) and a reranker;
- policy: answer / clarify / hand off (:mod:`verticals.support_bot.policy`);
- ``conversations``: drafts, replies, transcripts, handoffs (:mod:`verticals.support_bot.chat`);
- ``evaluation``: evaluate, calibrate, fine-tuning pairs (:mod:`verticals.support_bot.evaluation`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from verticals.support_bot.candidates import Candidate
from verticals.support_bot.chat import CONTEXT_WEIGHT, FOLLOW_UP, Conversations, Reply, Turn
from verticals.support_bot.evaluation import Evaluation, matches, read_questions
from verticals.support_bot.index import TenantIndex
from verticals.support_bot.knowledge import Knowledge, load_sample
from verticals.support_bot.policy import (
    Kind,
    KnowledgeThresholds,
    Policy,
    decide,
    tenant_policy,
)
from verticals.support_bot.rescoring import load_rescorer
from verticals.support_bot.retrieval import Mode, Retriever
from verticals.support_bot.settings import SERVICE, SupportSettings
from verticals.support_bot.store import Store
from verticals.support_bot.tenants import KEY_CACHE_S, TENANT_ID, Tenants, UnknownTenant
from verticals.support_bot.text import EntryIn

__all__ = [
    "CONTEXT_WEIGHT",
    "FOLLOW_UP",
    "KEY_CACHE_S",
    "TENANT_ID",
    "Candidate",
    "Kind",
    "Mode",
    "Policy",
    "Reply",
    "SupportBot",
    "Turn",
    "UnknownTenant",
    "decide",
    "load_sample",
    "matches",
    "read_questions",
]


def load_reranker(settings: SupportSettings, registry: Any = None) -> Any:
    """The registered reranker (``settings.reranker_task``), or None when there is none or
    reranking is switched off."""
    if not settings.rerank:
        return None
    from verticals.core.registry import ModelRegistry

    registry = registry or ModelRegistry.default()
    if registry.current_version(settings.reranker_task) is None:
        return None
    from verticals.core.reranking import Reranker

    return Reranker.from_registry(
        settings.reranker_task, registry, max_length=settings.rerank_max_length
    )


class SupportBot:
    """Thread-safe service object; the API and the CLI share it."""

    def __init__(
        self,
        settings: SupportSettings,
        encoder: Any = None,
        persist: bool = True,
        store: Store | None = None,
        registry: Any = None,
        reranker: Any = None,
        rescorer: Any = None,
    ) -> None:
        from verticals.core.inference import Encoder

        self.settings = settings
        self.registry = registry
        self.store = store or Store(settings.sqlalchemy_url(SERVICE))
        self.encoder = encoder or Encoder.from_registry(
            settings.encoder_task,
            form=settings.encoder_form,
            registry=registry,
            fallback_to_base=True,
        )
        self.persist = persist
        self.tenants = Tenants(self.store)
        # None: the one the settings ask for; False: none
        self.rescorer = (
            load_rescorer(settings, persist, registry) if rescorer is None else rescorer or None
        )
        self.knowledge = Knowledge(
            settings, self.store, self.encoder, self.tenants, persist, self.rescorer
        )
        self.reranker = load_reranker(settings, registry) if reranker is None else reranker or None
        self.retriever = Retriever(
            settings, self.encoder, self.knowledge, self.reranker, self.rescorer
        )
        self.thresholds = KnowledgeThresholds(settings, self.retriever)
        self.conversations = Conversations(
            settings,
            self.store,
            self.encoder,
            self.tenants,
            self.retriever,
            self.policy,
            registry,
        )
        self.evaluation = Evaluation(
            settings, self.store, self.encoder, self.tenants, self.retriever, self.policy
        )

    # tenants and keys ----------------------------------------------------------------------
    def create_tenant(self, tenant: str, name: str = "") -> tuple[str, str]:
        """Returns (admin key, widget key); only their hashes are stored."""
        return self.tenants.create(tenant, name)

    def rotate_keys(self, tenant: str, admin: bool = True, widget: bool = True) -> dict[str, str]:
        return self.tenants.rotate_keys(tenant, admin, widget)

    def authenticate(self, key: str) -> tuple[str, str] | None:
        """(tenant, ``admin`` | ``widget``) for a tenant key, else None."""
        return self.tenants.authenticate(key)

    def tenant_row(self, tenant: str) -> Any:
        return self.tenants.row(tenant)

    def require_tenant(self, tenant: str) -> None:
        self.tenants.require(tenant)

    # knowledge -----------------------------------------------------------------------------
    @property
    def indexes(self) -> dict[str, TenantIndex]:
        return self.knowledge.indexes

    def load(self) -> dict[str, str]:
        """Load every tenant's saved index, rebuilding missing or stale ones."""
        return self.knowledge.load()

    def index(self, tenant: str) -> TenantIndex:
        return self.knowledge.index(tenant)

    def rebuild(self, tenant: str, entries: dict[int, EntryIn] | None = None) -> int:
        return self.knowledge.rebuild(tenant, entries)

    def upsert(self, tenant: str, entries: list[EntryIn]) -> int:
        return self.knowledge.upsert(tenant, entries)

    def ingest_faq(self, tenant: str, content: str, fmt: str, where: str = "upload") -> int:
        return self.knowledge.ingest_faq(tenant, content, fmt, where)

    def ingest_document(
        self,
        tenant: str,
        doc_id: str,
        content: str,
        fmt: str,
        title: str = "",
        url: str = "",
        category: str = "",
        metadata: dict[str, str] | None = None,
    ) -> int:
        return self.knowledge.ingest_document(
            tenant, doc_id, content, fmt, title, url, category, metadata
        )

    def delete(self, tenant: str, entry_id: str) -> int:
        return self.knowledge.delete(tenant, entry_id)

    # retrieval and policy ------------------------------------------------------------------
    def retrieve(
        self,
        tenant: str,
        query: str,
        mode: Mode = "hybrid",
        k: int | None = None,
        vector: np.ndarray | None = None,
        boost_category: str | None = None,
        rerank: bool = True,
        filter: Mapping[str, str] | None = None,
    ) -> list[Candidate]:
        return self.retriever.retrieve(
            tenant, query, mode, k, vector, boost_category, rerank, filter
        )

    def policy(self, tenant: str) -> Policy:
        """The calibrated policy, else the threshold derived from the knowledge base, else the
        fixed default."""
        policy = tenant_policy(
            self.tenants.row(tenant),
            self.encoder.version,
            self.settings,
            self.retriever.reranker.version if self.retriever.reranker is not None else None,
        )
        default = None if policy.calibrated else self.thresholds.get(tenant)
        return policy if default is None else replace(policy, threshold=default)

    # chat ----------------------------------------------------------------------------------
    @property
    def rewriter(self) -> Any:
        return self.conversations.rewriter

    @rewriter.setter
    def rewriter(self, value: Any) -> None:
        self.conversations.rewriter = value

    def chat(
        self, tenant: str, session: str, message: str, filter: Mapping[str, str] | None = None
    ) -> Reply:
        return self.conversations.chat(tenant, session, message, filter)

    def chat_many(self, turns: Sequence[Turn]) -> list[Reply | Exception]:
        return self.conversations.chat_many(turns)

    def staff_reply(
        self, tenant: str, handoff_id: int, text: str, entry_id: str | None, close: bool
    ) -> int:
        return self.conversations.staff_reply(tenant, handoff_id, text, entry_id, close)

    def feedback(self, tenant: str, session: str, message_id: int, rating: str) -> int:
        return self.conversations.feedback(tenant, session, message_id, rating)

    # evaluation ----------------------------------------------------------------------------
    def evaluate(
        self,
        tenant: str,
        questions: Iterable[dict[str, Any]],
        mode: Mode = "hybrid",
        policy: Policy | None = None,
        rerank: bool = True,
    ) -> dict[str, Any]:
        return self.evaluation.evaluate(tenant, questions, mode, policy, rerank)

    def calibrate(self, tenant: str, questions: Iterable[dict[str, Any]]) -> dict[str, Any]:
        return self.evaluation.calibrate(tenant, questions)

    def training_pairs(self, tenant: str) -> list[tuple[str, str, str]]:
        return self.evaluation.training_pairs(tenant)
