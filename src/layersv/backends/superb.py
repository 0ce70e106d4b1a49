"""SUPERB weighted layer sum + a speaker network (Yang et al., "SUPERB", Interspeech 2021).

The baseline layer aggregation of LAP ("Rethinking Leveraging Pre-Trained Multi-Layer
Representations for Speaker Verification", Kim et al., Interspeech 2025): a softmax-weighted
sum over the encoder's hidden states, then a speaker network.  This file provides the
``astp`` speaker network (frame projection + attentive statistics pooling + linear
embedding); other speaker networks plug in through ``SPEAKER_NETWORKS``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import AttentiveStatsPool, LayerWeightedSum


class ASTPNetwork(nn.Module):
    """Frame projection → attentive statistics pooling → embedding.

    Input ``(B, T, D)`` frames with ``lengths (B,)``; output ``(B, embedding_dim)``.
    ``hidden_dim`` = 0 pools the input features directly (WeSpeaker's ASTP projection head).
    """

    def __init__(self, in_dim: int, embedding_dim: int = 192, hidden_dim: int = 256, bottleneck: int = 128):
        super().__init__()
        if hidden_dim > 0:
            self.frame = nn.Sequential(nn.Conv1d(in_dim, hidden_dim, 1), nn.ReLU(), nn.BatchNorm1d(hidden_dim))
            pooled = hidden_dim
        else:
            self.frame = nn.Identity()
            pooled = in_dim
        self.pool = AttentiveStatsPool(pooled, bottleneck)
        self.bn = nn.BatchNorm1d(2 * pooled)
        self.proj = nn.Linear(2 * pooled, embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.frame(x.transpose(1, 2))  # (B, C, T)
        return self.proj(self.bn(self.pool(x, lengths)))


SPEAKER_NETWORKS = {"astp": ASTPNetwork}


class SUPERB(nn.Module):
    """SUPERB weighted sum over layers + speaker network.

    Args:
        in_layers: number of hidden states L of the input ``(B, L, T, D)``.
        in_dim: feature size D.
        speaker_network: key of ``SPEAKER_NETWORKS``.
        embedding_dim: output size E.
        hidden_dim: frame projection size of the ``astp`` network (0 = none).
    Returns ``(B, E)`` embeddings (not normalised; the model normalises at eval time).
    """

    def __init__(self, in_layers: int, in_dim: int, speaker_network: str = "astp", embedding_dim: int = 192,
                 hidden_dim: int = 256, layer_norm: bool = True):
        super().__init__()
        if speaker_network not in SPEAKER_NETWORKS:
            raise ValueError(f"unknown speaker_network {speaker_network!r}; valid: {', '.join(SPEAKER_NETWORKS)}")
        self.aggregate = LayerWeightedSum(in_layers, layer_norm=layer_norm)
        self.network = SPEAKER_NETWORKS[speaker_network](in_dim, embedding_dim=embedding_dim, hidden_dim=hidden_dim)
        self.embedding_dim = embedding_dim

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.network(self.aggregate(hidden), lengths)

    def layer_weights(self) -> torch.Tensor:
        return self.aggregate.layer_weights()
