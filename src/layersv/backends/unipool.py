"""UniPool (Kim et al., sadPororo/UniPool-SV): D3 block + Layer Attention Pool over SSL hidden states.

Input ``hidden (batch, layers, frames, dim)`` is rearranged to ``(B, C=dim, L, T)`` (channels,
"height" = layers, "width" = frames).  By default hidden state 0 (the CNN/projection output) is
excluded as in the seed (``exclude_layer0``), so a base encoder gives L = 12.

1. Conv2d 1×1 D→4·conv_dim + BN2d (Xavier).
2. ``n_blocks`` D3 blocks, outputs concatenated over channels.  Each block:
   a. attentive VAD: L softmax-weighted layer re-mixings (logits initialised one-hot, an L×L
      row-stochastic matrix) and a per-layer sigmoid frame gate σ(w_lᵀx + b_l) (0 on padding);
   b. D2 dense block (1×1 → 128, three dense layers of multi-dilated 3×3 convs, dilations 1/2/4,
      pre-activated BN-ReLU, concat → 512) + CBAM channel attention (avg and max branch), with a
      residual.  The seed adds the input twice (x ← 2x + f(x)); default here is the intended
      single residual x + f(x); ``seed_double_residual=True`` reproduces the seed.
3. Layer Attention Pool (4 heads, 512) → ``(B, 512, T)``.
4. Attentive statistics pooling (1024) → BN → Linear → BN → ``pool_dim`` (192).

Every convolution over frames sees zeroed padding and every statistic over frames is masked, so a
padded batch equals one item at a time (in eval mode).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layer_attention import LayerAttentionHead
from .layers import lengths_to_mask, mask_time, masked_avg, masked_max, span_out


class AttentiveVAD(nn.Module):
    """Layer re-mixing (L×L softmax rows, one-hot init) + per-layer frame gate.  ``(B, C, L, T)``."""

    def __init__(self, channels: int, num_layers: int):
        super().__init__()
        self.mix_weights = nn.Parameter(torch.eye(num_layers) * 1.0)  # logits; row i initialised one-hot at i
        self.gate = nn.Parameter(torch.empty(num_layers, channels))
        nn.init.xavier_uniform_(self.gate)
        self.gate_bias = nn.Parameter(torch.zeros(num_layers))

    def mixing(self) -> torch.Tensor:
        return torch.softmax(self.mix_weights, dim=-1)  # (L_out, L_in)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.einsum("ij,bcjt->bcit", self.mixing().to(x.dtype), x)
        logit = torch.einsum("lc,bclt->blt", self.gate.to(x.dtype), x) + self.gate_bias[None, :, None]
        logit = logit.masked_fill(~mask[:, None, :], float("-inf"))
        return x * torch.sigmoid(logit)[:, None]


class D2ChannelBlock(nn.Module):
    """1×1 conv → multi-dilated dense block (D3Net MDConv) → CBAM channel attention.  ``(B, 4g, L, T)``."""

    def __init__(self, in_ch: int, growth: int, dilations: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        self.inp = nn.Conv2d(in_ch, growth, 1)
        nn.init.kaiming_uniform_(self.inp.weight)
        self.bns = nn.ModuleList()
        self.convs = nn.ModuleList()
        for k in range(1, len(dilations) + 1):
            for j in range(k):  # y_k = Σ_j conv_{d_j}(relu(bn(y_j)))
                conv = nn.Conv2d(growth, growth, 3, padding=dilations[j], dilation=dilations[j])
                nn.init.kaiming_uniform_(conv.weight)
                self.convs.append(conv)
                self.bns.append(nn.BatchNorm2d(growth))
        self.depth = len(dilations)
        out = growth * (len(dilations) + 1)
        red = out // 4

        def branch() -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(out, red, 1), nn.ReLU(), nn.BatchNorm2d(red), nn.Conv2d(red, out, 1))

        self.avg_branch, self.max_branch = branch(), branch()
        self.out_ch = out

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ys = [self.inp(x)]
        i = 0
        for k in range(1, self.depth + 1):
            y = 0
            for j in range(k):
                y = y + self.convs[i](mask_time(torch.relu(self.bns[i](ys[j])), mask))
                i += 1
            ys.append(y)
        y = mask_time(torch.cat(ys, 1), mask)
        att = self.avg_branch(masked_avg(y, mask, (2, 3))) + self.max_branch(masked_max(y, mask, (2, 3)))
        return y * torch.sigmoid(att)


class UniPool(nn.Module):
    """UniPool speaker network.  ``(B, L, T, D)`` + lengths → ``(B, pool_dim)``.

    Args:
        in_layers, in_dim: hidden states and width of the input.
        conv_dim: growth of the D2 block (projection = 4·conv_dim = 512).
        n_blocks: D3 blocks; pool_dim: embedding size; heads: Layer Attention Pool heads.
        exclude_layer0: drop hidden state 0 as the seed does.
        seed_double_residual: reproduce the seed's x ← 2x + f(x).
        spanout_prob, span_mask_prob, span_mask_length: the seed's span-out (off by default, as in the
            seed's config: 0.3 / 0.05 / 3 when on): in training, drop random spans of frames from a
            share of the items and compact the rest (:func:`layers.span_out`).
    """

    def __init__(self, in_layers: int, in_dim: int, conv_dim: int = 128, n_blocks: int = 1, pool_dim: int = 192,
                 heads: int = 4, exclude_layer0: bool = True, seed_double_residual: bool = False,
                 dropout: float = 0.1, spanout_prob: float = 0.0, span_mask_prob: float = 0.05,
                 span_mask_length: int = 3):
        super().__init__()
        self.spanout = (spanout_prob, span_mask_prob, span_mask_length)
        self.in_layers = in_layers
        self.skip = 1 if (exclude_layer0 and in_layers > 1) else 0
        n = in_layers - self.skip
        width = 4 * conv_dim
        self.proj = nn.Conv2d(in_dim, width, 1)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.proj_bn = nn.BatchNorm2d(width)
        self.vads = nn.ModuleList([AttentiveVAD(width, n) for _ in range(n_blocks)])
        self.blocks = nn.ModuleList([D2ChannelBlock(width, conv_dim) for _ in range(n_blocks)])
        self.residual_scale = 2.0 if seed_double_residual else 1.0
        self.head = LayerAttentionHead(n, width * n_blocks, width, heads, pool_dim, dropout)
        self.embedding_dim = pool_dim

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.training and self.spanout[0] > 0:
            hidden, lengths = span_out(hidden, lengths, *self.spanout)
        mask = lengths_to_mask(lengths, hidden.shape[2])
        x = hidden[:, self.skip:].permute(0, 3, 1, 2)  # (B, D, L, T)
        x = mask_time(self.proj_bn(self.proj(x)), mask)
        outs = []
        for vad, block in zip(self.vads, self.blocks):
            x = vad(x, mask)
            x = mask_time(self.residual_scale * x + block(x, mask), mask)
            outs.append(x)
        return self.head(torch.cat(outs, 1), lengths)  # LAP → (B, width, T) → ASP → (B, pool_dim)

    def layer_attention(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, in_layers)`` mean Layer-Attention-Pool weights per layer (0 for an excluded layer 0).

        The attention acts on the VAD re-mixed layers; ``vads[0].mixing()`` gives that L×L mixing.
        """
        with torch.no_grad():
            self(hidden, lengths)
        a = self.head.lap.attention_summary(lengths)
        return torch.cat([a.new_zeros(a.shape[0], self.skip), a], 1)
