"""WavLM + RawNet-style fusion (the seeds' "WavLMRawNetXSVBase", §5).

Two branches fused into one 256-d embedding:

* encoder branch: masked mean over frames of the **last** hidden state of
  ``hidden (batch, layers, frames, dim)`` → ``(B, D)`` (``layer_sum=True`` uses a SUPERB weighted
  sum instead — not in the seed);
* "RawNetX" branch on the raw waveform ``wav (B, S)`` at the full sample rate (no striding):
  SincConv (128 band-pass filters, kernel 251, Hamming window, learnable low cut-off and bandwidth,
  both ≥ 50 Hz, low initialised linspace(30, 7900) Hz) → InstanceNorm (affine) → Mish → 4 residual
  blocks [Conv1d k3 → InstanceNorm → SE (reduction 8, bias-free) → Mish; + input] → attentive stats
  (Linear → tanh → Conv1d →1 → softmax over samples; weighted mean and std → 256)
  → Linear 256→256 → ReLU.
* fusion: concat (D + 256) → Linear → 256.

**Fixes of the seed**: the seed's SincConv is not the textbook band-pass: its cut-offs are doubled
(``2·f`` where the textbook has ``f``) and its centre tap is 0 (the 0/0 of sin(x)/x set to zero
instead of its limit); layersv uses the textbook filter (``seed_sinc=True`` reproduces the seed's).
The seed ended the embedding with a ReLU (non-negative vectors, which wastes
half of the cosine space); here the fused Linear output is the embedding.  ``seed_final_relu=True``
reproduces the seed.

The backend needs the waveform: ``needs_waveform = True`` makes ``SpeakerEncoder.forward`` call
``backend(hidden, lengths, wav=wav, wav_lengths=wav_lengths)``.  InstanceNorm, SE and pooling
statistics are masked over valid samples, so a padded batch equals one item at a time.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import StaticLayers, lengths_to_mask, mask_time, masked_avg, masked_mean_std


def _sinc(x: torch.Tensor) -> torch.Tensor:
    """``sin(πx) / (πx)`` with 1 at 0 (``torch.sinc`` has no ONNX export at opset 17)."""
    y = torch.pi * x
    zero = y == 0
    return torch.where(zero, torch.ones_like(y), torch.sin(y) / torch.where(zero, torch.ones_like(y), y))


class RawSincConv(nn.Module):
    """Learnable band-pass sinc filters (Ravanelli & Bengio 2018), RawNetX variant: ``(B, S)`` → ``(B, C, S)``."""

    def __init__(self, channels: int = 128, kernel: int = 251, sample_rate: int = 16000, min_low: float = 50.0,
                 min_band: float = 50.0, low: float = 30.0, high: float = 7900.0, seed_sinc: bool = False):
        super().__init__()
        self.seed_sinc = seed_sinc
        self.kernel, self.sample_rate, self.min_low, self.min_band = kernel, sample_rate, min_low, min_band
        self.low_hz = nn.Parameter(torch.linspace(low, high, channels)[:, None])
        self.band_hz = nn.Parameter(torch.full((channels, 1), (high - low) / channels))
        n = (torch.arange(kernel) - (kernel - 1) / 2) / sample_rate
        self.register_buffer("n", n[None, :], persistent=False)
        self.register_buffer("window", torch.hamming_window(kernel, periodic=False)[None, :], persistent=False)

    def filters(self) -> torch.Tensor:
        low = self.min_low + self.low_hz.abs()
        high = (low + self.min_band + self.band_hz.abs()).clamp(max=self.sample_rate / 2)
        if self.seed_sinc:  # the seed: doubled cut-offs, zero centre tap
            high, low = 2 * high, 2 * low
        bp = 2 * high * _sinc(2 * high * self.n) - 2 * low * _sinc(2 * low * self.n)
        if self.seed_sinc:
            bp = bp * (self.n != 0)
        return (bp / (2 * (high - low))) * self.window  # unit gain at the band centre (approximately)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return F.conv1d(wav[:, None], self.filters()[:, None], padding=self.kernel // 2)


class MaskedInstanceNorm(nn.Module):
    """InstanceNorm1d(affine) over valid samples only: ``(B, C, S)``."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean, std = masked_mean_std(x, mask, eps=self.eps)
        y = (x - mean[..., None]) / std[..., None]
        return mask_time(y * self.weight[:, None] + self.bias[:, None], mask)


class RawResBlock(nn.Module):
    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=1)
        self.norm = MaskedInstanceNorm(channels)
        self.se = nn.Sequential(nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(),
                                nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(mask_time(x, mask)), mask)
        y = y * self.se(masked_avg(y, mask, (2,))[..., 0])[..., None]
        return mask_time(F.mish(y) + x, mask)


class RawNetX(nn.Module):
    """Raw-waveform branch: ``wav (B, S)``, ``wav_lengths (B,)`` → ``(B, 256)``."""

    def __init__(self, channels: int = 128, blocks: int = 4, sample_rate: int = 16000, out_dim: int = 256,
                 seed_sinc: bool = False):
        super().__init__()
        self.sinc = RawSincConv(channels, sample_rate=sample_rate, seed_sinc=seed_sinc)
        self.norm = MaskedInstanceNorm(channels)
        self.blocks = nn.ModuleList(RawResBlock(channels) for _ in range(blocks))
        self.att = nn.Sequential(nn.Conv1d(channels, channels, 1), nn.Tanh(), nn.Conv1d(channels, 1, 1))
        self.fc = nn.Linear(2 * channels, out_dim)

    def forward(self, wav: torch.Tensor, wav_lengths: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(wav_lengths, wav.shape[-1])
        x = F.mish(self.norm(self.sinc(mask_time(wav, mask)), mask))
        for block in self.blocks:
            x = block(x, mask)
        logits = self.att(x).float().masked_fill(~mask[:, None], float("-inf"))
        w = torch.softmax(logits, -1).to(x.dtype)
        mu = (w * x).sum(-1)
        std = ((w * x * x).sum(-1) - mu * mu).clamp_min(1e-5).sqrt()
        return torch.relu(self.fc(torch.cat([mu, std], -1)))


class WavLMRawNetX(nn.Module):
    """Args: ``embedding_dim`` (256), ``raw_channels`` (128), ``raw_blocks`` (4), ``sample_rate`` of the
    waveform (16000), ``layer_sum`` (weighted sum instead of the last layer), ``seed_final_relu``,
    ``seed_sinc`` (the seed's SincConv: doubled cut-offs, zero centre tap)."""

    needs_waveform = True

    def __init__(self, in_layers: int, in_dim: int, embedding_dim: int = 256, raw_channels: int = 128,
                 raw_blocks: int = 4, sample_rate: int = 16000, layer_sum: bool = False,
                 seed_final_relu: bool = False, seed_sinc: bool = False):
        super().__init__()
        self.layers = StaticLayers(in_layers, layer_sum)
        self.raw = RawNetX(raw_channels, raw_blocks, sample_rate, seed_sinc=seed_sinc)
        self.fuse = nn.Linear(in_dim + 256, embedding_dim)
        nn.init.xavier_uniform_(self.fuse.weight)
        self.seed_final_relu = seed_final_relu
        self.embedding_dim = embedding_dim

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor, wav: torch.Tensor | None = None,
                wav_lengths: torch.Tensor | None = None) -> torch.Tensor:
        if wav is None or wav_lengths is None:
            raise ValueError("WavLM-RawNetX needs the waveform: call backend(hidden, lengths, wav=..., "
                             "wav_lengths=...) (SpeakerEncoder does this because needs_waveform is True)")
        x = self.layers(hidden).transpose(1, 2)
        enc = masked_mean_std(x, lengths_to_mask(lengths, x.shape[-1]))[0]
        emb = self.fuse(torch.cat([enc, self.raw(wav, wav_lengths)], -1))
        return torch.relu(emb) if self.seed_final_relu else emb

    def layer_weights(self) -> torch.Tensor:
        return self.layers.layer_weights()

