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
    """Hand off below the confidence threshold; clarify when the top two differ and are too close
    in probability (softmax of cosine / temperature over the fused top five); else answer."""
    if not candidates or candidates[0].cosine < policy.threshold:
        return "handoff"
    first = candidates[0]
    rivals = [
        c
        for c in candidates[1:5]
        if c.cosine >= policy.threshold
        and not (c.entry.kind == "passage" and c.entry.source == first.entry.source)
    ]
    if rivals and first.prob - max(c.prob for c in rivals) < policy.margin:
        return "clarify"
    return "answer"


def tenant_policy(row: Any, encoder_version: str, settings: SupportSettings) -> Policy:
    """The tenant's calibrated policy when it was calibrated for this encoder, else defaults."""
    cal = row.calibration or {}
    calibrated = cal.get("encoder") == encoder_version and "threshold" in cal
    return Policy(
        float(cal["threshold"]) if calibrated else settings.handoff_threshold,
        float(cal.get("margin", settings.ambiguity_margin))
        if calibrated
        else settings.ambiguity_margin,
        settings.temperature,
        calibrated,
    )
