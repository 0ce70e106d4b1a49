"""ECAPA-TDNN (Desplanques et al., Interspeech 2020): SE-Res2 TDNN blocks + attentive statistics pooling.

``ECAPANetwork``: ``(B, C_in, T)`` frames + lengths → ``(B, embedding_dim)``.  Conv1d k5 → C →
three SE-Res2 blocks (kernel 3, dilations 2/3/4, scale 8, SE bottleneck 128) → concat (3C) →
Conv1d 3C→``cat_dim`` (1536) → ReLU → attentive statistics pooling with global context → BN(3072) → Linear.
Two flavours, as in the seeds:

* ``style="tao"`` (TaoRuijie/ECAPA-TDNN, the framework's classic baseline): block inputs are the
  cumulative sums x, x+x1, x+x1+x2; attention Conv 4608→256 → ReLU → BN → Tanh → Conv → 1536;
  final BN1d(192).
* ``style="wespeaker"`` (LAP's ``ecapa-tdnn`` speaker network): blocks applied sequentially;
  attention bottleneck 128 with ReLU → BN → Tanh (WeSpeaker ASTP uses Tanh only; kept close);
  no final BN.

``ECAPA_TDNN`` is the classic baseline backend (``channels`` 512 or 1024) on one feature stream of
``(B, L, T, D)`` (the last hidden state or a weighted sum when L > 1), e.g. 80 log-mel fbank from a
fbank frontend; FbankAug/CMN are the frontend's job.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import ContextASP, StaticLayers, lengths_to_mask, mask_time, masked_avg


class ConvReluBn1d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return mask_time(self.bn(torch.relu(self.conv(mask_time(x, mask)))), mask)


class SERes2Block1d(nn.Module):
    """1×1 → Res2 (``scale`` groups, hierarchical dilated k3 convs) → 1×1 → SE → + input."""

    def __init__(self, channels: int, dilation: int, scale: int = 8, se_dim: int = 128):
        super().__init__()
        self.width = channels // scale
        self.pre = ConvReluBn1d(channels, self.width * scale)
        self.convs = nn.ModuleList(ConvReluBn1d(self.width, self.width, 3, dilation) for _ in range(scale - 1))
        self.post = ConvReluBn1d(self.width * scale, channels)
        self.se = nn.Sequential(nn.Conv1d(channels, se_dim, 1), nn.ReLU(), nn.Conv1d(se_dim, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        splits = torch.split(self.pre(x, mask), self.width, 1)
        outs, sp = [], None
        for i, conv in enumerate(self.convs):
            sp = conv(splits[i] if sp is None else sp + splits[i], mask)
            outs.append(sp)
        outs.append(splits[-1])
        y = self.post(torch.cat(outs, 1), mask)
        return y * self.se(masked_avg(y, mask, (2,))) + x


class ECAPANetwork(nn.Module):
    STYLES = ("tao", "wespeaker")

    def __init__(self, in_dim: int, embedding_dim: int = 192, channels: int = 512, style: str = "tao",
                 cat_dim: int = 1536):
        super().__init__()
        if style not in self.STYLES:
            raise ValueError(f"unknown ECAPA style {style!r}; valid: {', '.join(self.STYLES)}")
        self.cumulative = style == "tao"
        self.stem = ConvReluBn1d(in_dim, channels, 5)
        self.blocks = nn.ModuleList(SERes2Block1d(channels, d) for d in (2, 3, 4))
        self.cat = nn.Conv1d(3 * channels, cat_dim, 1)
        self.pool = ContextASP(cat_dim, 256 if style == "tao" else 128, tanh=True)
        self.bn_pool = nn.BatchNorm1d(2 * cat_dim)
        self.fc = nn.Linear(2 * cat_dim, embedding_dim)
        self.bn_emb = nn.BatchNorm1d(embedding_dim) if style == "tao" else nn.Identity()
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(lengths, x.shape[-1])
        x = self.stem(x, mask)
        outs, inp = [], x
        for block in self.blocks:
            y = block(inp, mask)
            outs.append(y)
            inp = inp + y if self.cumulative else y
        x = mask_time(torch.relu(self.cat(torch.cat(outs, 1))), mask)
        return self.bn_emb(self.fc(self.bn_pool(self.pool(x, lengths))))


class ECAPA_TDNN(nn.Module):
    """Classic ECAPA-TDNN baseline.  ``(B, L, T, D)`` + lengths → ``(B, embedding_dim)``."""

    def __init__(self, in_layers: int, in_dim: int, channels: int = 512, embedding_dim: int = 192,
                 cat_dim: int = 1536, layer_sum: bool = True):
        super().__init__()
        self.layers = StaticLayers(in_layers, layer_sum)
        self.network = ECAPANetwork(in_dim, embedding_dim, channels, style="tao", cat_dim=cat_dim)
        self.embedding_dim = embedding_dim

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.network(self.layers(hidden).transpose(1, 2), lengths)

    def layer_weights(self) -> torch.Tensor:
        return self.layers.layer_weights()
