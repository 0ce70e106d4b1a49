"""ASTP speaker network: the light backend of LAP (Kim et al., Interspeech 2025, §4.4 ``astp``).

``(B, C, T)`` frames + lengths → ``(B, embedding_dim)``: attentive statistics pooling with global
context (Conv1d 3C→C/2 → ReLU → BN → Conv1d C/2→C, 10 % score dropout in training) → BN1d(2C) →
Linear 2C→E → BN1d(E).  ``hidden_dim`` > 0 adds a frame projection Conv1d C→hidden_dim → ReLU → BN
first (not in the seed; the quickstart uses it to shrink a wide input).

``pooled(x, lengths)`` → ``(B, 2C')`` is the batch-normalised pooled statistics below the
projection (``C'`` = ``hidden_dim`` or C): the embedding tap ``tap: pooled`` of
:class:`layersv.backends.speaker_networks.AggregatedBackend` extracts it at inference.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import ContextASP, lengths_to_mask, mask_time


class ASTPNetwork(nn.Module):
    def __init__(self, in_dim: int, embedding_dim: int = 192, hidden_dim: int = 0, score_dropout: float = 0.1):
        super().__init__()
        if hidden_dim > 0:
            self.frame = nn.Sequential(nn.Conv1d(in_dim, hidden_dim, 1), nn.ReLU(), nn.BatchNorm1d(hidden_dim))
            pooled = hidden_dim
        else:
            self.frame = nn.Identity()
            pooled = in_dim
        self.pool = ContextASP(pooled, max(1, pooled // 2), score_dropout=score_dropout)
        self.bn = nn.BatchNorm1d(2 * pooled)
        self.proj = nn.Linear(2 * pooled, embedding_dim)
        self.bn_emb = nn.BatchNorm1d(embedding_dim)
        self.embedding_dim = embedding_dim

        self.pooled_dim = 2 * pooled

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` → ``(B, 2C')`` batch-normalised attentive mean ‖ std (below the projection)."""
        x = mask_time(self.frame(x), lengths_to_mask(lengths, x.shape[-1]))
        return self.bn(self.pool(x, lengths))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.bn_emb(self.proj(self.pooled(x, lengths)))
