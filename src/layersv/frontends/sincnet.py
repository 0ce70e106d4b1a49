"""SincNet's learnable sinc filterbank (Ravanelli & Bengio 2018, "Speaker Recognition from Raw Waveform
with SincNet") as a frontend: the first layer only; the CNN stack behind it is the SincNet backend's.

``(wav (B, S) at 16 kHz, wav_lengths (B,))`` → ``(hidden (B, 1, T, n_filters), frame_lengths (B,))``.
Each filter is a band-pass ``2 f2 sinc(2π f2 t) − 2 f1 sinc(2π f1 t)`` (learned cut-offs ``f1``,
``f2 = f1 + band``, mel-spaced at initialisation, ``f1 >= 50 Hz``, ``band >= 50 Hz``) times a Hamming
window, ``kernel`` taps (251 = 15.7 ms).  The convolution is *valid* (no padding), then ``|·|``,
max-pooling over ``pool`` samples (stride ``pool``) and a layer norm over the filters per frame, as
in SincNet's first block.  Frames: ``T = (S − kernel + 1) // pool``; with ``pool = 3`` that is
16000/3 ≈ 5333 frames/s (stride 3 samples = 0.1875 ms).  Every valid frame sees only valid samples,
so a padded batch gives each item its single-item output.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _hz_to_mel(hz):
    return 2595 * math.log10(1 + hz / 700)


def _mel_to_hz(mel):
    return 700 * (10 ** (mel / 2595) - 1)


class SincFrontend(nn.Module):
    """Learnable sinc filterbank + |·| + max-pool + layer norm.

    Args:
        n_filters: band-pass filters (80); kernel: taps (odd, 251); pool: max-pool size = stride (samples);
        min_low_hz, min_band_hz: lower bounds of the learned cut-offs (Hz).
    """

    sample_rate = 16000
    num_layers = 1

    def __init__(self, n_filters: int = 80, kernel: int = 251, pool: int = 3, min_low_hz: float = 50.0,
                 min_band_hz: float = 50.0):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"sinc kernel must be odd, got {kernel}")
        self.n_filters, self.kernel, self.pool = n_filters, kernel, pool
        self.min_low_hz, self.min_band_hz = min_low_hz, min_band_hz
        high = self.sample_rate / 2 - (min_low_hz + min_band_hz)
        hz = torch.tensor([_mel_to_hz(m) for m in torch.linspace(_hz_to_mel(30), _hz_to_mel(high),
                                                                   n_filters + 1).tolist()])
        self.low_hz = nn.Parameter(hz[:-1, None])  # (F, 1)
        self.band_hz = nn.Parameter(hz.diff()[:, None])
        half = kernel // 2
        n = torch.linspace(0, half - 1, half)
        self.register_buffer("window", 0.54 - 0.46 * torch.cos(2 * math.pi * n / kernel), persistent=False)
        self.register_buffer("t", 2 * math.pi * torch.arange(-half, 0).float()[None] / self.sample_rate,
                             persistent=False)
        self.norm = nn.LayerNorm(n_filters)

    @property
    def dim(self) -> int:
        return self.n_filters

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.pool

    def filters(self) -> torch.Tensor:
        """(F, 1, kernel) band-pass impulse responses (SincNet's symmetric construction)."""
        low = self.min_low_hz + self.low_hz.abs()
        high = (low + self.min_band_hz + self.band_hz.abs()).clamp(self.min_low_hz, self.sample_rate / 2)
        band = (high - low)[:, 0]
        left = (torch.sin(high @ self.t) - torch.sin(low @ self.t)) / (self.t / 2) * self.window
        center = 2 * band[:, None]
        bp = torch.cat([left, center, left.flip(1)], dim=1) / (2 * band[:, None])
        return bp[:, None]

    def frame_lengths(self, wav_lengths: torch.Tensor) -> torch.Tensor:
        return torch.div((wav_lengths - self.kernel + 1).clamp_min(0), self.pool, rounding_mode="floor")

    def forward(self, wav: torch.Tensor, wav_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = wav.float()[:, None]
        if x.shape[-1] < self.kernel + self.pool - 1:
            x = F.pad(x, (0, self.kernel + self.pool - 1 - x.shape[-1]))
        y = F.conv1d(x, self.filters()).abs()  # (B, F, S - kernel + 1)
        y = F.max_pool1d(y, self.pool)
        y = self.norm(y.transpose(1, 2))  # (B, T, F)
        lengths = self.frame_lengths(wav_lengths).clamp(max=y.shape[1])
        y = y * (torch.arange(y.shape[1], device=y.device)[None] < lengths[:, None])[..., None]
        return y[:, None], lengths

    def describe(self) -> dict:
        return {"n_filters": self.n_filters, "kernel": self.kernel, "pool": self.pool,
                "min_low_hz": self.min_low_hz, "min_band_hz": self.min_band_hz}

    @classmethod
    def from_description(cls, d: dict) -> "SincFrontend":
        return cls(**d)
