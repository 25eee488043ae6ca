"""The answer / clarify / hand-off decision and each tenant's policy (threshold, margin)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from verticals.support_bot.retrieval import Candidate
from verticals.support_bot.settings import SupportSettings

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
