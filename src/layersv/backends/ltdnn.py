"""L-TDNN (sadPororo/L-TDNN): a 2-D CNN over the (layers × frames) stack of SSL hidden states.

Two variants, both with ``hidden (batch, layers, frames, dim)`` rearranged to ``(B, C, L, T)``.
**Kernel orientation**: every 2-D kernel is written (layer axis, time axis), e.g. the ECAPA stem
(5, 3) spans 5 hidden states × 3 frames (the seed's comment claimed (B, C, T, L); the real layout
is (B, C, L, T), as here).  All hidden states including state 0 are used (13 for a base encoder).

* ``LTDNN_ECAPA``: BN2d → ConvReluBn (5, 3) D→256 → three sequential SE-Res2 blocks (scale 8,
  dilations 2/3/4 on both axes) → concat (768) → 1×1 conv + ReLU → Layer Attention Pool
  (8 heads → 512) → attentive statistics pooling → 192.
* ``LTDNN_D3Net``: stem kernel (1, 5) (time only) → three sequential SE-D2 blocks (depth 4,
  widths 256/192/128/64, residual 3×3 ConvReluBn with dilation 2^d, 64 channels split off per
  step) → same fusion / pool / ASP.  **Split side**: layersv splits off the *first* 64 channels at
  each step and continues with the rest; the seed splits off the *last* 64.  Channels are
  interchangeable at initialisation (the convolution that produced them is symmetric in its output
  channels), so both are the same family of networks with the same parameter count — only a
  checkpoint converted from the seed would need its channels permuted.

ConvReluBn = Conv2d (padding "same") → ReLU → BN2d; Xavier-uniform weights, zero biases.  Padded
frames are zeroed before every convolution and SE statistics are masked, so a padded batch equals
one item at a time in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layer_attention import LayerAttentionHead
from .layers import lengths_to_mask, mask_time, masked_avg


class ConvReluBn(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: tuple[int, int] = (1, 1), dilation: int = 1):
        super().__init__()
        pad = (dilation * (kernel[0] - 1) // 2, dilation * (kernel[1] - 1) // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation)
        nn.init.xavier_uniform_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return mask_time(self.bn(torch.relu(self.conv(mask_time(x, mask)))), mask)


class SE2d(nn.Module):
    """Squeeze-excitation over (layers, frames), masked mean."""

    def __init__(self, channels: int, bottleneck: int = 128):
        super().__init__()
        self.fc = nn.Sequential(nn.Conv2d(channels, bottleneck, 1), nn.ReLU(), nn.Conv2d(bottleneck, channels, 1))
        for conv in (self.fc[0], self.fc[2]):  # the seed: every conv Xavier-uniform, biases 0
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc(masked_avg(x, mask, (2, 3))))


class SERes2Block2d(nn.Module):
    """1×1 → Res2 (scale groups, 3×3 dilated on both axes, hierarchical) → 1×1 → SE → + input."""

    def __init__(self, channels: int, dilation: int, scale: int = 8, se_dim: int = 128):
        super().__init__()
        self.scale, self.width = scale, channels // scale
        self.pre = ConvReluBn(channels, channels)
        self.convs = nn.ModuleList(ConvReluBn(self.width, self.width, (3, 3), dilation) for _ in range(scale - 1))
        self.post = ConvReluBn(channels, channels)
        self.se = SE2d(channels, se_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.pre(x, mask)
        splits = torch.split(y, self.width, 1)
        outs, sp = [], None
        for i, conv in enumerate(self.convs):
            sp = splits[i] if sp is None else sp + splits[i]
            sp = conv(sp, mask)
            outs.append(sp)
        outs.append(splits[-1])  # last group passed through
        y = self.post(torch.cat(outs, 1), mask)
        return self.se(y, mask) + x


class SED2Block2d(nn.Module):
    """D3Net-style D2 block: per step a residual 3×3 ConvReluBn (dilation 2^d), then split off ``piece`` channels."""

    def __init__(self, channels: int = 256, depth: int = 4, se_dim: int = 128):
        super().__init__()
        self.piece = channels // depth
        widths = [channels - d * self.piece for d in range(depth)]  # 256, 192, 128, 64
        self.convs = nn.ModuleList(ConvReluBn(w, w, (3, 3), 2**d) for d, w in enumerate(widths))
        self.se = SE2d(channels, se_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pieces, cur = [], x
        for conv in self.convs:
            cur = cur + conv(cur, mask)
            pieces.append(cur[:, : self.piece])
            cur = cur[:, self.piece:]
        return self.se(torch.cat(pieces, 1), mask)


class _LTDNN(nn.Module):
    def __init__(self, in_layers: int, in_dim: int, conv_dim: int, hidden_size: int, n_head: int, pool_dim: int,
                 stem_kernel: tuple[int, int], blocks: list[nn.Module], dropout: float):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(in_dim)
        self.stem = ConvReluBn(in_dim, conv_dim, stem_kernel)
        self.blocks = nn.ModuleList(blocks)
        fused = conv_dim * len(blocks)
        self.fusion = nn.Conv2d(fused, fused, 1)
        nn.init.xavier_uniform_(self.fusion.weight)
        nn.init.zeros_(self.fusion.bias)
        self.head = LayerAttentionHead(in_layers, fused, hidden_size, n_head, pool_dim, dropout)
        self.embedding_dim = pool_dim

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(lengths, hidden.shape[2])
        x = self.bn_in(hidden.permute(0, 3, 1, 2))  # (B, D, L, T)
        x = self.stem(x, mask)
        outs = []
        for block in self.blocks:  # sequential: x_{i+1} = B_i(x_i)
            x = block(x, mask)
            outs.append(x)
        x = mask_time(torch.relu(self.fusion(torch.cat(outs, 1))), mask)
        return self.head(x, lengths)

    def layer_attention(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` Layer-Attention-Pool weights averaged over heads and valid frames."""
        with torch.no_grad():
            self(hidden, lengths)
        return self.head.lap.attention_summary(lengths)


class LTDNN_ECAPA(_LTDNN):
    """L-TDNN with an ECAPA-style 2-D stem (5 layers × 3 frames) and SE-Res2 blocks."""

    def __init__(self, in_layers: int, in_dim: int, conv_dim: int = 256, hidden_size: int = 512, n_head: int = 8,
                 pool_dim: int = 192, scale: int = 8, dropout: float = 0.1):
        blocks = [SERes2Block2d(conv_dim, d, scale) for d in (2, 3, 4)]
        super().__init__(in_layers, in_dim, conv_dim, hidden_size, n_head, pool_dim, (5, 3), blocks, dropout)


class LTDNN_D3Net(_LTDNN):
    """L-TDNN with a time-only stem (1 layer × 5 frames) and SE-D2 blocks."""

    def __init__(self, in_layers: int, in_dim: int, conv_dim: int = 256, hidden_size: int = 512, n_head: int = 8,
                 pool_dim: int = 192, n_blocks: int = 3, depth: int = 4, dropout: float = 0.1):
        blocks = [SED2Block2d(conv_dim, depth) for _ in range(n_blocks)]
        super().__init__(in_layers, in_dim, conv_dim, hidden_size, n_head, pool_dim, (1, 5), blocks, dropout)
