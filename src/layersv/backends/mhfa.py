"""MHFA: multi-head factorized attentive pooling (Peng et al., "An attention-based backend allowing
efficient fine-tuning of transformer models for speaker verification", SLT 2022), as modified in LAP.

Keys and values come from their **own** layer aggregators over ``hidden (B, L, T, D)`` (two SUPERB
weighted sums or two LAP poolings, ``aggregation``).  k, v → Linear → ``compression`` (128);
attention logits = Linear compression→``heads`` (64) on k; softmax over frames per head;
pooled_h = Σ_t a_{t,h} v_t → flatten (heads·compression) → Linear → ``embedding_dim`` (256).
Fix of the seed: the softmax ignores padded frames (the seed had no mask).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layer_attention import make_aggregator
from .layers import MaskedFeatureNorm, lengths_to_mask, seed_init


class MHFAPool(nn.Module):
    """``k (B, Ck, T)``, ``v (B, Cv, T)``, lengths → ``(B, embedding_dim)``."""

    def __init__(self, key_dim: int, value_dim: int, heads: int = 64, compression: int = 128,
                 embedding_dim: int = 256):
        super().__init__()
        self.key = nn.Linear(key_dim, compression)
        self.value = nn.Linear(value_dim, compression)
        self.att = nn.Linear(compression, heads)
        self.out = nn.Linear(heads * compression, embedding_dim)

    def forward(self, k: torch.Tensor, v: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(lengths, k.shape[-1])
        logits = self.att(self.key(k.transpose(1, 2))).float()  # (B, T, H)
        a = torch.softmax(logits.masked_fill(~mask[..., None], float("-inf")), dim=1).to(v.dtype)
        v = self.value(v.transpose(1, 2)).masked_fill(~mask[..., None], 0.0)  # (B, T, c)
        return self.out(torch.einsum("bth,btc->bhc", a, v).flatten(1))


class MHFA(nn.Module):
    """MHFA backend.  ``(B, L, T, D)`` + lengths → ``(B, embedding_dim)``.

    Args:
        aggregation: ``superb`` or ``lap`` (one aggregator for the keys, another for the values).
        layer_norm: per-layer layer norm before the SUPERB sums (seed: off).
        feature_norm: per-layer, per-dimension standardisation of the input, mask-aware
            (:class:`layersv.backends.layers.MaskedFeatureNorm`; not in the seed).
        lap_dim, lap_heads: LAP aggregator output size and heads.
    """

    def __init__(self, in_layers: int, in_dim: int, aggregation: str = "superb", embedding_dim: int = 256,
                 heads: int = 64, compression: int = 128, layer_norm: bool = False, lap_dim: int = 512,
                 lap_heads: int = 16, dropout: float = 0.1, feature_norm: bool = False):
        super().__init__()
        self.feature_norm = MaskedFeatureNorm(in_layers, in_dim) if feature_norm else None
        self.key_aggregate = make_aggregator(aggregation, in_layers, in_dim, layer_norm, lap_dim, lap_heads, dropout)
        self.value_aggregate = make_aggregator(aggregation, in_layers, in_dim, layer_norm, lap_dim, lap_heads, dropout)
        self.pool = MHFAPool(self.key_aggregate.out_dim, self.value_aggregate.out_dim, heads, compression,
                             embedding_dim)
        seed_init(self)  # LAP's backend init (Xavier weights, zero biases), also for the MHFA recipe class
        self.embedding_dim = embedding_dim

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.feature_norm is not None:
            hidden = self.feature_norm(hidden, lengths)
        return self.pool(self.key_aggregate(hidden), self.value_aggregate(hidden), lengths)

    def layer_attention(self, hidden: torch.Tensor, lengths: torch.Tensor, which: str = "value") -> torch.Tensor:
        """``(B, L)`` layer weights of the ``value`` (default) or ``key`` aggregator."""
        with torch.no_grad():
            self(hidden, lengths)
        agg = self.value_aggregate if which == "value" else self.key_aggregate
        return agg.attention_summary(lengths)
