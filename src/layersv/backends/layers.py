"""Shared building blocks of the backends: masks, mask-aware statistics and pooling, layer sums.

Shapes: ``hidden`` is ``(batch, layers, frames, dim)``; frame-level tensors inside the
frame networks are ``(batch, channels, frames)``; ``lengths`` holds valid frames per item.
Every reduction over time here ignores padded frames, so a padded batch gives the same
result as one item at a time.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(batch,)`` valid lengths → ``(batch, max_len)`` bool mask, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean_std(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) standard deviation over the last axis of ``x (B, C, T)``.

    ``mask (B, T)`` selects valid frames.  Returns two ``(B, C)`` tensors.  The variance is
    clamped before the square root (no NaN gradient at zero variance).
    """
    m = mask[:, None, :].to(x.dtype)
    n = m.sum(-1).clamp_min(1.0)
    mean = (x * m).sum(-1) / n
    var = ((x - mean[..., None]) ** 2 * m).sum(-1) / n
    return mean, var.clamp_min(eps).sqrt()


class StatsPool(nn.Module):
    """Masked mean + std pooling: ``(B, C, T)`` → ``(B, 2C)``."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mean, std = masked_mean_std(x, lengths_to_mask(lengths, x.shape[-1]))
        return torch.cat([mean, std], dim=-1)


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (Okabe et al., Interspeech 2018), mask-aware.

    Args:
        in_dim: channels C of the input ``(B, C, T)``.
        bottleneck: hidden size of the attention network.
        global_context: concatenate the utterance mean/std to every frame before the
            attention (the ECAPA-TDNN variant, Desplanques et al. 2020).
    Returns ``(B, 2C)``: attention-weighted mean and standard deviation.
    """

    def __init__(self, in_dim: int, bottleneck: int = 128, global_context: bool = False):
        super().__init__()
        self.global_context = global_context
        att_in = in_dim * 3 if global_context else in_dim
        self.attention = nn.Sequential(
            nn.Conv1d(att_in, bottleneck, 1), nn.Tanh(), nn.Conv1d(bottleneck, in_dim, 1)
        )
        self.out_dim = 2 * in_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(lengths, x.shape[-1])  # (B, T)
        att_in = x
        if self.global_context:
            mean, std = masked_mean_std(x, mask)
            t = x.shape[-1]
            att_in = torch.cat([x, mean[..., None].expand(-1, -1, t), std[..., None].expand(-1, -1, t)], 1)
        logits = self.attention(att_in).float()  # (B, C, T)
        logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
        w = torch.softmax(logits, dim=-1).to(x.dtype)  # (B, C, T), zero on padding
        mean = (w * x).sum(-1)
        var = (w * x * x).sum(-1) - mean * mean
        return torch.cat([mean, var.clamp_min(1e-5).sqrt()], dim=-1)


class LayerWeightedSum(nn.Module):
    """SUPERB weighted sum (Yang et al., Interspeech 2021): softmax(w) · hidden over layers.

    ``(B, L, T, D)`` → ``(B, T, D)``.  ``layer_norm`` applies a parameter-free layer norm to
    each layer first (as s3prl does), so layers with large norms do not dominate.
    """

    def __init__(self, num_layers: int, layer_norm: bool = True):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_layers))
        self.layer_norm = layer_norm

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.layer_norm:
            hidden = F.layer_norm(hidden, (int(hidden.shape[-1]),))  # static D: ONNX-exportable
        w = torch.softmax(self.weights, dim=0).to(hidden.dtype)
        return torch.einsum("l,bltd->btd", w, hidden)

    def layer_weights(self) -> torch.Tensor:
        """``(L,)`` normalised layer weights (sum to 1)."""
        return torch.softmax(self.weights.detach(), dim=0)
