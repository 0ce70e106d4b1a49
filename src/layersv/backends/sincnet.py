"""SincNet's convolution/MLP stack as a backend (Ravanelli & Bengio, "Speaker Recognition from Raw
Waveform with SincNet", SLT 2018; the framework's official cfg).

The sinc filterbank itself (SincConv 80×251 on the raw wave) is a *frontend* (frontends/sincnet.py);
this backend takes its frames ``hidden (batch, layers, frames, dim)`` — normally L = 1 and D = 80
filter outputs per frame, but any frontend works (last layer, or a weighted sum when L > 1) — and
applies the rest of SincNet:

* ``input_relu``: ReLU on the sinc layer's output (the seed's act after the sinc layer's LayerNorm,
  which the sinc frontend applies);
* two Conv1d layers (60 filters, kernel 5) over frames, each → max-pool 3 (over frames) →
  LayerNorm (over channels) → ``conv_act`` (the framework's seed: ReLU; SincNet's TIMIT cfg: LeakyReLU 0.2);
* a frame-wise MLP of ``fc_layers`` × ``fc_dim`` (2048×3): input LayerNorm, then
  Linear → BN → LeakyReLU(0.2) per layer;
* d-vector: masked mean of the last MLP layer over frames → ``(B, fc_dim)``.

Differences from the seed (documented): SincNet classifies fixed 200 ms chunks (flattened conv
output → MLP) and averages the chunk d-vectors over 10 windows; here the MLP runs per frame and the
d-vector is the masked average over all frames, so any length works and padded batches equal single
items.  The LayerNorm of the conv layers normalises each frame over channels (the seed normalised
the whole chunk).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import StaticLayers, lengths_to_mask, mask_time, masked_mean_std


class SincNet(nn.Module):
    def __init__(self, in_layers: int, in_dim: int, conv_channels: int = 60, conv_kernel: int = 5, pool: int = 3,
                 fc_dim: int = 2048, fc_layers: int = 3, layer_sum: bool = True, input_relu: bool = True,
                 conv_act: str = "relu"):
        super().__init__()
        if conv_act not in ("relu", "leaky_relu"):
            raise ValueError(f"conv_act must be relu or leaky_relu, got {conv_act!r}")
        self.input_relu, self.conv_act = input_relu, conv_act
        self.layers = StaticLayers(in_layers, layer_sum)
        self.convs = nn.ModuleList([nn.Conv1d(in_dim, conv_channels, conv_kernel, padding=conv_kernel // 2),
                                    nn.Conv1d(conv_channels, conv_channels, conv_kernel, padding=conv_kernel // 2)])
        self.norms = nn.ModuleList(nn.LayerNorm(conv_channels) for _ in self.convs)
        self.pool = pool
        self.ln_in = nn.LayerNorm(conv_channels)
        dims = [conv_channels] + [fc_dim] * fc_layers
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.bns = nn.ModuleList(nn.BatchNorm1d(fc_dim) for _ in range(fc_layers))
        self.embedding_dim = fc_dim

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.layers(hidden).transpose(1, 2)  # (B, D, T)
        if self.input_relu:
            x = torch.relu(x)
        for conv, norm in zip(self.convs, self.norms):
            mask = lengths_to_mask(lengths, x.shape[-1])
            x = conv(mask_time(x, mask)).masked_fill(~mask[:, None], float("-inf"))
            x = F.max_pool1d(x, self.pool, ceil_mode=True)
            lengths = torch.div(lengths + self.pool - 1, self.pool, rounding_mode="floor")
            mask = lengths_to_mask(lengths, x.shape[-1])
            x = x.masked_fill(~mask[:, None], 0.0)
            x = norm(x.transpose(1, 2)).transpose(1, 2)
            x = torch.relu(x) if self.conv_act == "relu" else F.leaky_relu(x, 0.2)
        mask = lengths_to_mask(lengths, x.shape[-1])
        x = self.ln_in(x.transpose(1, 2)).transpose(1, 2)
        for fc, bn in zip(self.fcs, self.bns):
            x = mask_time(F.leaky_relu(bn(fc(x.transpose(1, 2)).transpose(1, 2)), 0.2), mask)
        return masked_mean_std(x, mask)[0]

    def layer_weights(self) -> torch.Tensor:
        return self.layers.layer_weights()
