"""X-vector TDNN (Snyder et al., ICASSP 2018; the seeds' cvqluu/TDNN and LAP ``x-vector``).

``(B, C, T)`` frames + lengths → ``(B, embedding_dim)``: five TDNN layers (context 5/dil 1,
3/dil 2, 3/dil 3, 1, 1; widths ``channels`` ×4 = 512 and ``pool_channels`` = 1500), each
Conv1d → ReLU → BN, → masked mean + std (3000) → Linear → ``embedding_dim`` (segment6 = the x-vector).
In training mode a tail is applied before the classifier head (``segment7``); eval returns segment6.
``tail="lap"``: ReLU → Linear 512→512 (LAP's ``x-vector`` speaker network); ``tail="cvqluu"``: the
framework's X-vector baseline, BN6 → ReLU → Linear 512→512 → ReLU → BN7.  The seed's TDNN used unpadded convolutions (frames shrink at the edges);
here the convolutions are zero-padded ("same") with masked padding so batches of different
lengths match single items.

``XVector`` is the classic baseline backend: it reads one feature stream from ``(B, L, T, D)`` —
the last hidden state, or a SUPERB weighted sum when L > 1 and ``layer_sum`` — e.g. 24 MFCCs
from an MFCC frontend (pre-emphasis/MFCC are the frontend's job).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import StaticLayers, StatsPool, lengths_to_mask, mask_time


class XVectorNetwork(nn.Module):
    TAILS = ("lap", "cvqluu")

    def __init__(self, in_dim: int, embedding_dim: int = 512, segment7: bool = True, channels: int = 512,
                 pool_channels: int = 1500, tail: str = "lap"):
        super().__init__()
        if tail not in self.TAILS:
            raise ValueError(f"unknown x-vector tail {tail!r}; valid: {', '.join(self.TAILS)}")
        c, p = channels, pool_channels
        spec = [(in_dim, c, 5, 1), (c, c, 3, 2), (c, c, 3, 3), (c, c, 1, 1), (c, p, 1, 1)]
        self.tdnn = nn.ModuleList(
            nn.Sequential(nn.Conv1d(i, o, k, dilation=d, padding=d * (k - 1) // 2), nn.ReLU(), nn.BatchNorm1d(o))
            for i, o, k, d in spec
        )
        self.pool = StatsPool()
        self.segment6 = nn.Linear(2 * p, embedding_dim)
        e = embedding_dim
        if not segment7:
            self.segment7 = None
        elif tail == "lap":
            self.segment7 = nn.Sequential(nn.ReLU(), nn.Linear(e, e))
        else:
            self.segment7 = nn.Sequential(nn.BatchNorm1d(e), nn.ReLU(), nn.Linear(e, e), nn.ReLU(), nn.BatchNorm1d(e))
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(lengths, x.shape[-1])
        for layer in self.tdnn:
            x = layer(mask_time(x, mask))
        emb = self.segment6(self.pool(x, lengths))
        if self.training and self.segment7 is not None:
            return self.segment7(emb)
        return emb


class XVector(nn.Module):
    """Classic x-vector baseline.  ``(B, L, T, D)`` + lengths → ``(B, embedding_dim)``; ``tail`` defaults
    to the framework seed's (cvqluu) BN6 → ReLU → Linear → ReLU → BN7."""

    def __init__(self, in_layers: int, in_dim: int, embedding_dim: int = 512, segment7: bool = True,
                 channels: int = 512, pool_channels: int = 1500, layer_sum: bool = True, tail: str = "cvqluu"):
        super().__init__()
        self.layers = StaticLayers(in_layers, layer_sum)
        self.network = XVectorNetwork(in_dim, embedding_dim, segment7, channels, pool_channels, tail)
        self.embedding_dim = embedding_dim

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.network(self.layers(hidden).transpose(1, 2), lengths)

    def layer_weights(self) -> torch.Tensor:
        return self.layers.layer_weights()
