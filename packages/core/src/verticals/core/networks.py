"""The networks: a transformer encoder with mean pooling, and one linear head per label set.

This module imports torch; the rest of the core imports it only inside functions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from verticals.core.data import Head


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class TextEncoder(nn.Module):
    """Transformer + mean pooling, L2-normalised when used for embeddings."""

    def __init__(self, encoder: nn.Module, normalize: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize

    @property
    def hidden_size(self) -> int:
        config: Any = self.encoder.config
        return int(config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        pooled = mean_pool(out.last_hidden_state, attention_mask)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled


class ProjectedEncoder(nn.Module):
    """A distilled student: the unit-length sentence vector mapped by one linear layer into a
    teacher's vector space (``verticals.core.distillation``; not normalised here)."""

    def __init__(self, encoder: nn.Module, dimension: int) -> None:
        super().__init__()
        self.body = TextEncoder(encoder, normalize=True)
        self.projection = nn.Linear(self.body.hidden_size, dimension)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.projection(self.body(input_ids, attention_mask))


class MultiHeadClassifier(nn.Module):
    """One shared encoder and one linear head per label set: all heads in one forward pass."""

    def __init__(self, encoder: nn.Module, heads: list[Head], dropout: float = 0.1) -> None:
        super().__init__()
        self.body = TextEncoder(encoder, normalize=False)
        self.head_specs = heads
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict(
            {h.name: nn.Linear(self.body.hidden_size, len(h.labels)) for h in heads}
        )

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        pooled = self.dropout(self.body(input_ids, attention_mask))
        return {name: head(pooled) for name, head in self.heads.items()}


class CrossEncoderNet(nn.Module):
    """A query and a passage read together (one sequence), mean-pooled, one relevance logit."""

    def __init__(self, encoder: nn.Module, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        config: Any = encoder.config
        self.head = nn.Linear(int(config.hidden_size), 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        pooled = mean_pool(out.last_hidden_state, attention_mask)
        return self.head(self.dropout(pooled)).squeeze(-1)
