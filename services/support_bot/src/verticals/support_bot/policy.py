"""The answer / clarify / hand-off decision and each tenant's policy (threshold, margin).

A tenant nobody calibrated gets a threshold derived from its own knowledge base
(:class:`KnowledgeThresholds`): no labelled question needed."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from verticals.support_bot.candidates import Candidate, origin
from verticals.support_bot.settings import SupportSettings
from verticals.support_bot.text import EntryIn

if TYPE_CHECKING:
    from verticals.support_bot.retrieval import Retriever

Kind = Literal["answer", "clarify", "handoff"]


@dataclass(frozen=True)
class Policy:
    threshold: float
    margin: float
    temperature: float
    calibrated: bool


def decide(candidates: Sequence[Candidate], policy: Policy) -> Kind:
    """Hand off below the confidence threshold (the reranker's relevance probability when the
    candidates were reranked, else the cosine); clarify when the top two differ and are too
    close (in relevance when reranked, else in softmax probability over the fused top five);
    else answer."""
    if not candidates or candidates[0].confidence < policy.threshold:
        return "handoff"
    first = candidates[0]
    rivals = [
        c
        for c in candidates[1:5]
        if c.confidence >= policy.threshold
        and not (c.entry.kind == "passage" and c.entry.source == first.entry.source)
    ]
    if not rivals:
        return "answer"
    if first.relevance is not None:
        close = first.relevance - max(c.relevance or 0.0 for c in rivals) < policy.margin
    else:
        close = first.prob - max(c.prob for c in rivals) < policy.margin
    return "clarify" if close else "answer"


def tenant_policy(
    row: Any, encoder_version: str, settings: SupportSettings, reranker_version: str | None = None
) -> Policy:
    """The tenant's calibrated policy when it was calibrated for this encoder and reranker, else
    the defaults: the cosine threshold, or the reranker's probability threshold."""
    cal = row.calibration or {}
    calibrated = (
        cal.get("encoder") == encoder_version
        and cal.get("reranker") == reranker_version
        and "threshold" in cal
    )
    default = settings.handoff_threshold if reranker_version is None else settings.rerank_threshold
    return Policy(
        float(cal["threshold"]) if calibrated else default,
        float(cal.get("margin", settings.ambiguity_margin))
        if calibrated
        else settings.ambiguity_margin,
        settings.temperature,
        calibrated,
    )


_SENTENCE = re.compile(r"(?<=[.?!:])\s+")


def pseudo_query(entry: EntryIn, max_words: int = 24) -> str | None:
    """A question an entry answers, in its own words: the first sentence of its text (at most
    ``max_words`` words; an FAQ's question would match its own entry almost exactly); None when
    that is under four words."""
    text = _SENTENCE.split(entry.body.strip(), 1)[0]
    words = text.split()[:max_words]
    return " ".join(words) if len(words) >= 4 else None


def threshold_from_scores(wrong: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of the best *other* entry's confidence over the pseudo-queries: the
    score a question about something the knowledge base does not hold tends to get."""
    return float(np.quantile(wrong, quantile))


class KnowledgeThresholds:
    """Each tenant's default threshold, from its own entries and no labelled question.

    Up to ``settings.pseudo_queries`` entries (seeded sample) are each turned into a
    pseudo-query (:func:`pseudo_query`) and retrieved like a customer's question (fused and
    reranked); the best candidate from *another* entry or document is what the tenant would
    answer if the entry were missing, that is what an unanswerable question looks like to this
    knowledge base and this model. The threshold is a high quantile of those scores
    (``settings.pseudo_quantile``). Kept until the index gains or loses entries; tenants with
    fewer than ``settings.pseudo_min_entries`` entries keep the fixed default."""

    def __init__(self, settings: SupportSettings, retriever: Retriever) -> None:
        self.settings = settings
        self.retriever = retriever
        self._cache: dict[str, tuple[tuple[int, int, int], float | None]] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str) -> float | None:
        if not self.settings.knowledge_threshold:
            return None
        index = self.retriever.knowledge.fresh_index(tenant)
        key = (id(index), len(index.entries), max(index.entries, default=0))
        with self._lock:
            cached = self._cache.get(tenant)
            if cached is None or cached[0] != key:
                cached = (key, self.compute(tenant))
                self._cache[tenant] = cached
            return cached[1]

    def scores(self, tenant: str) -> np.ndarray:
        """Per pseudo-query, the best confidence among candidates from other entries."""
        entries = list(self.retriever.knowledge.index(tenant).entries.values())
        rng = np.random.default_rng(0)
        order = rng.permutation(len(entries))
        asked: list[tuple[str, str]] = []
        for i in order:
            query = pseudo_query(entries[int(i)])
            if query:
                asked.append((query, origin(entries[int(i)])))
            if len(asked) >= self.settings.pseudo_queries:
                break
        if not asked:
            return np.zeros(0)
        queries = [q for q, _ in asked]
        vectors = self.retriever.encoder.encode(queries)
        found = [
            self.retriever.retrieve(tenant, q, vector=v, rerank=False)
            for q, v in zip(queries, vectors, strict=True)
        ]
        self.retriever.second_stage(queries, found, everything=True)  # every rival's score
        wrong = []
        for (_, own), candidates in zip(asked, found, strict=True):
            top = candidates[: self.settings.rerank_top]
            others = [c.confidence for c in top if origin(c.entry) != own]
            wrong.append(max(others, default=0.0))
        return np.asarray(wrong)

    def compute(self, tenant: str) -> float | None:
        if len(self.retriever.knowledge.index(tenant)) < self.settings.pseudo_min_entries:
            return None
        wrong = self.scores(tenant)
        if len(wrong) == 0:
            return None
        return round(threshold_from_scores(wrong, self.settings.pseudo_quantile), 4)
