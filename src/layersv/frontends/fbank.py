"""Log-mel filterbank and MFCC frontends (the spectral inputs of the ECAPA/ResNet/TDNN seeds), in torch.

``(wav (B, S) at 16 kHz, wav_lengths (B,) samples)`` → ``(hidden (B, 1, T, D), frame_lengths (B,))``
with L = 1 "layer", D = ``n_mels`` (fbank) or ``n_mfcc`` (MFCC: DCT-II of the log-mels), 100 frames/s.
Seed settings: pre-emphasis 0.97, 512-point FFT of 25 ms Hamming windows every 10 ms, HTK mel
filters 20-7600 Hz, ``log(mel + 1e-6)``, mean normalisation over time.  Per seed: the X-vector
seed's MFCCs take the log-mels in dB (``log_db``: 10·log10) and normalise mean and variance per
utterance (``var_norm``); the ECAPA-TDNN seed's 80 MFCCs are L2-normalised per frame
(``frame_l2``, no mean normalisation) and masked by FbankAug (one frequency mask of 0-10 bins, one
time mask of 0-5 frames: ``spec_augment`` with ``n_*_masks = 1``).

Mask-aware: frames are taken without centring (frame t covers samples ``[160 t, 160 t + 400)``, so
``T = (S - 400) // 160 + 1``), so no frame of a clip sees the padding of a batch, and the mean
normalisation averages valid frames only: a padded batch gives each item its single-item features.
SpecAugment (Park et al. 2019) time and frequency masks (set to 0 = the mean after normalisation)
are drawn only in training mode, within each item's valid frames.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from transformers.audio_utils import mel_filter_bank

from ..utils import lengths_to_mask
from .hidden_mask import time_masks


class FbankFrontend(nn.Module):
    """Log-mel fbank (``n_mfcc = 0``) or MFCC (``n_mfcc > 0``), shape ``(B, 1, T, D)``.

    Args:
        n_mels: mel filters; n_mfcc: cepstral coefficients kept (0 = fbank output);
        mean_norm: subtract each item's mean over its valid frames; var_norm: also divide by its
            standard deviation (CMVN); frame_l2: L2-normalise every frame over the D coefficients;
        log_db: log-mels in dB (10·log10(mel + 1e-6)) instead of the natural log;
        spec_augment: time/frequency masking in training mode; n_time_masks/time_mask (max width,
            frames), n_freq_masks/freq_mask (max width, bins).
    """

    sample_rate = 16000
    frame_rate = 100.0

    def __init__(self, n_mels: int = 80, n_mfcc: int = 0, n_fft: int = 512, win_ms: float = 25.0,
                 hop_ms: float = 10.0, f_min: float = 20.0, f_max: float = 7600.0, preemph: float = 0.97,
                 mean_norm: bool = True, spec_augment: bool = False, n_time_masks: int = 2, time_mask: int = 10,
                 n_freq_masks: int = 2, freq_mask: int = 8, var_norm: bool = False, frame_l2: bool = False,
                 log_db: bool = False):
        super().__init__()
        if n_mfcc > n_mels:
            raise ValueError(f"n_mfcc ({n_mfcc}) cannot exceed n_mels ({n_mels})")
        self.args = dict(n_mels=n_mels, n_mfcc=n_mfcc, n_fft=n_fft, win_ms=win_ms, hop_ms=hop_ms, f_min=f_min,
                         f_max=f_max, preemph=preemph, mean_norm=mean_norm, spec_augment=spec_augment,
                         n_time_masks=n_time_masks, time_mask=time_mask, n_freq_masks=n_freq_masks,
                         freq_mask=freq_mask, var_norm=var_norm, frame_l2=frame_l2, log_db=log_db)
        self.win = int(round(win_ms * self.sample_rate / 1000))
        self.hop = int(round(hop_ms * self.sample_rate / 1000))
        if self.win > n_fft:
            raise ValueError(f"window ({self.win} samples) longer than n_fft ({n_fft})")
        fb = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=f_min,
                             max_frequency=f_max, sampling_rate=self.sample_rate, norm=None, mel_scale="htk")
        self.register_buffer("filters", torch.as_tensor(fb, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hamming_window(self.win, periodic=False), persistent=False)
        if n_mfcc:
            k = torch.arange(n_mels, dtype=torch.float64)
            dct = torch.cos(math.pi / n_mels * (k[:, None] + 0.5) * torch.arange(n_mfcc)[None])  # DCT-II
            dct[:, 0] *= 1 / math.sqrt(2)
            self.register_buffer("dct", (dct * math.sqrt(2.0 / n_mels)).float(), persistent=False)
        self.n_fft, self.n_mfcc, self.n_mels = n_fft, n_mfcc, n_mels
        self.preemph, self.mean_norm, self.spec_augment = preemph, mean_norm, spec_augment
        self.var_norm, self.frame_l2, self.log_db = var_norm, frame_l2, log_db
        self.masks = (n_time_masks, time_mask, n_freq_masks, freq_mask)

    num_layers = 1

    @property
    def dim(self) -> int:
        return self.n_mfcc or self.n_mels

    def frame_lengths(self, wav_lengths: torch.Tensor) -> torch.Tensor:
        return (torch.div(wav_lengths - self.win, self.hop, rounding_mode="floor") + 1).clamp_min(0)

    def forward(self, wav: torch.Tensor, wav_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = wav.float()
        if x.shape[1] < self.win:
            x = nn.functional.pad(x, (0, self.win - x.shape[1]))
        if self.preemph:
            x = torch.cat([x[:, :1], x[:, 1:] - self.preemph * x[:, :-1]], dim=1)
        frames = x.unfold(1, self.win, self.hop) * self.window  # (B, T, win)
        power = torch.fft.rfft(frames, n=self.n_fft).abs() ** 2  # (B, T, n_fft/2+1)
        feats = torch.log(power @ self.filters + 1e-6)  # (B, T, n_mels)
        if self.log_db:
            feats = feats * (10.0 / math.log(10.0))
        if self.n_mfcc:
            feats = feats @ self.dct
        lengths = self.frame_lengths(wav_lengths).clamp(max=feats.shape[1])
        mask = lengths_to_mask(lengths, feats.shape[1])[..., None]  # (B, T, 1)
        n = lengths.clamp_min(1)[:, None, None]
        if self.mean_norm or self.var_norm:
            mean = (feats * mask).sum(1, keepdim=True) / n
            feats = feats - mean
            if self.var_norm:
                feats = feats / (((feats * mask) ** 2).sum(1, keepdim=True) / n + 1e-10).sqrt()
        if self.frame_l2:
            feats = nn.functional.normalize(feats, dim=-1)
        feats = feats * mask
        if self.spec_augment and self.training:
            feats = self._augment(feats, lengths)
        return feats[:, None], lengths

    def _augment(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Zero ``n`` random time spans (<= ``time_mask`` frames) and frequency bands (<= ``freq_mask`` bins)."""
        B, T, D = feats.shape
        n_t, w_t, n_f, w_f = self.masks
        feats = time_masks(feats[:, None], lengths, n_t, w_t)[:, 0]
        keep = torch.ones_like(feats, dtype=torch.bool)
        f_idx = torch.arange(D, device=feats.device)
        for _ in range(n_f):
            w = torch.randint(0, w_f + 1, (B,), device=feats.device)
            start = (torch.rand(B, device=feats.device) * (D - w).clamp_min(1)).long()
            keep &= ~((f_idx[None] >= start[:, None]) & (f_idx[None] < (start + w)[:, None]))[:, None]
        return feats * keep

    def describe(self) -> dict:
        return dict(self.args)

    @classmethod
    def from_description(cls, d: dict) -> "FbankFrontend":
        return cls(**d)
