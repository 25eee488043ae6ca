"""A retrieval candidate: an entry with its scores from every stage (fused rank, cosine, second
encoder, reranker), shared by retrieval, the second stage and the policy."""

from __future__ import annotations

from dataclasses import dataclass

from verticals.support_bot.text import EntryIn


@dataclass
class Candidate:
    pk: int
    entry: EntryIn
    fused: float
    cosine: float
    prob: float = 0.0
    relevance: float | None = None
    """The reranker's probability that the entry answers the query (None: not reranked)."""
    second: float | None = None
    """The second encoder's cosine (None: not re-scored)."""
    combined: float | None = None
    """The mean of the two encoders' cosines, weighted (None: not re-scored)."""

    @property
    def confidence(self) -> float:
        """The reranker's relevance, else the re-scored cosine, else the cosine."""
        if self.relevance is not None:
            return self.relevance
        return self.cosine if self.combined is None else self.combined

    def citation(self) -> dict[str, str]:
        return {
            "id": self.entry.id,
            "title": self.entry.title,
            "heading": self.entry.heading,
            "url": self.entry.url,
        }


def origin(entry: EntryIn) -> str:
    """What an entry came from: its document for a passage, else the entry itself."""
    return entry.source if entry.kind == "passage" and entry.source else entry.id
