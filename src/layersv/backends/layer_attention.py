"""Layer Attention Pool: frame- and head-dependent attention over the layer axis, then max over layers.

The shared module of UniPool (§2.2-3), L-TDNN (§3.2-4) and LAP ("Rethinking Leveraging
Pre-Trained Multi-Layer Representations for Speaker Verification", Kim et al., Interspeech 2025,
the "Layer Attentive Pooling" of §4.4).  Input ``(B, C, L, T)`` (channels, layers, frames),
output ``(B, out_dim, T)``:

1. BN2d(C) → Conv2d 1×1 C→proj_dim (``proj_bias``: no bias in UniPool/L-TDNN, bias in LAP).
2. Split the channels into ``heads`` groups of d = proj_dim/heads.  For every head and frame,
   mean and max over the d channels give two L-vectors.
3. A per-head squeeze–excite MLP over the layer axis, L → max(1, ⌊L/2⌋) → L (ReLU), shared by
   the mean and max paths: a = dropout(σ(MLP(mean) + MLP(max))) ∈ (0, 1)^L.
4. x ← x · a, then max over the layer axis → ``(B, proj_dim, T)``.
5. Conv1d 1×1 proj_dim→out_dim (``proj_bias``) → BN1d(out_dim).

The last attention map ``(B, heads, L, T)`` is kept in ``last_attention`` (detached) for plots.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .layers import ContextASP, LayerWeightedSum, lengths_to_mask


class LayerAttentionPool(nn.Module):
    def __init__(self, num_layers: int, in_dim: int, proj_dim: int, out_dim: int, heads: int,
                 proj_bias: bool = False, dropout: float = 0.1):
        super().__init__()
        if proj_dim % heads:
            raise ValueError(f"proj_dim {proj_dim} is not divisible by heads {heads}")
        self.heads, self.num_layers = heads, num_layers
        hid = max(1, num_layers // 2)
        self.bn_in = nn.BatchNorm2d(in_dim)
        self.proj = nn.Conv2d(in_dim, proj_dim, 1, bias=proj_bias)
        self.w1 = nn.Parameter(torch.empty(heads, hid, num_layers))
        self.b1 = nn.Parameter(torch.zeros(heads, hid))
        self.w2 = nn.Parameter(torch.empty(heads, num_layers, hid))
        self.b2 = nn.Parameter(torch.zeros(heads, num_layers))
        for h in range(heads):  # W1 Kaiming, W2 Xavier (UniPool/L-TDNN init)
            nn.init.kaiming_uniform_(self.w1.data[h], a=math.sqrt(5))
            nn.init.xavier_uniform_(self.w2.data[h])
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Conv1d(proj_dim, out_dim, 1, bias=proj_bias)
        self.bn_out = nn.BatchNorm1d(out_dim)
        self.out_dim = out_dim
        self.last_attention: torch.Tensor | None = None

    def _mlp(self, v: torch.Tensor) -> torch.Tensor:  # (B, h, L, T) → (B, h, L, T)
        z = torch.relu(torch.einsum("hkl,bhlt->bhkt", self.w1, v) + self.b1[None, :, :, None])
        return torch.einsum("hlk,bhkt->bhlt", self.w2, z) + self.b2[None, :, :, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(self.bn_in(x))  # (B, P, L, T)
        b, p, l, t = x.shape
        xh = x.view(b, self.heads, p // self.heads, l, t)
        a = torch.sigmoid(self._mlp(xh.mean(2)) + self._mlp(xh.amax(2)))  # (B, h, L, T)
        self.last_attention = a.detach()
        a = self.dropout(a)
        pooled = (xh * a[:, :, None]).amax(3).reshape(b, p, t)  # max over layers
        return self.bn_out(self.out(pooled))

    def attention_summary(self, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, L)``: the last attention map averaged over heads and valid frames, normalised to sum 1."""
        a = self.last_attention
        if a is None:
            raise RuntimeError("run forward first")
        m = lengths_to_mask(lengths.to(a.device), a.shape[-1]).to(a.dtype)[:, None, None, :]
        s = (a * m).sum((1, 3))
        return s / s.sum(-1, keepdim=True).clamp_min(1e-12)


class LayerAttentionHead(nn.Module):
    """The embedding tail shared by UniPool and L-TDNN: Layer Attention Pool → ASP → BN → linear → BN.

    ``(B, in_ch, L, T)`` + ``lengths (B,)`` → ``(B, pool_dim)``; ``lap`` keeps the attention maps.
    """

    def __init__(self, num_layers: int, in_ch: int, width: int, heads: int, pool_dim: int, dropout: float):
        super().__init__()
        self.lap = LayerAttentionPool(num_layers, in_ch, width, width, heads, proj_bias=False, dropout=dropout)
        self.asp = ContextASP(width, width // 2, attn_dropout=dropout)
        self.bn_pool = nn.BatchNorm1d(2 * width)
        self.fc = nn.Linear(2 * width, pool_dim)
        self.bn_emb = nn.BatchNorm1d(pool_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.bn_emb(self.fc(self.bn_pool(self.asp(self.lap(x), lengths))))


class SumAggregator(nn.Module):
    """SUPERB weighted sum as an aggregator: ``(B, L, T, D)`` → ``(B, D, T)``."""

    def __init__(self, num_layers: int, in_dim: int, layer_norm: bool):
        super().__init__()
        self.sum = LayerWeightedSum(num_layers, layer_norm)
        self.out_dim = in_dim

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.sum(hidden).transpose(1, 2)

    def layer_weights(self) -> torch.Tensor:
        return self.sum.layer_weights()

    def attention_summary(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.layer_weights()[None].expand(len(lengths), -1)


class LAPAggregator(nn.Module):
    """LAP's Layer Attentive Pooling: BN2d → Conv2d D→D (bias) → heads → max over layers → D→out_dim.

    ``(B, L, T, D)`` → ``(B, out_dim, T)``.
    """

    def __init__(self, num_layers: int, in_dim: int, out_dim: int = 512, heads: int = 16, dropout: float = 0.1):
        super().__init__()
        self.pool = LayerAttentionPool(num_layers, in_dim, in_dim, out_dim, heads, proj_bias=True, dropout=dropout)
        self.out_dim = out_dim

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.pool(hidden.permute(0, 3, 1, 2))

    def attention_summary(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.pool.attention_summary(lengths)


AGGREGATIONS = ("superb", "lap")


def make_aggregator(kind: str, num_layers: int, in_dim: int, layer_norm: bool = False, lap_dim: int = 512,
                    lap_heads: int = 16, dropout: float = 0.1) -> nn.Module:
    """``superb`` (weighted sum) or ``lap`` (Layer Attentive Pooling): ``(B, L, T, D)`` → ``(B, C, T)``."""
    if kind == "superb":
        return SumAggregator(num_layers, in_dim, layer_norm)
    if kind == "lap":
        return LAPAggregator(num_layers, in_dim, lap_dim, lap_heads, dropout)
    raise ValueError(f"unknown layer aggregation {kind!r}; valid: {', '.join(AGGREGATIONS)}")
