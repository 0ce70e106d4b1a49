"""Telephone-channel augmentation: narrow band, 8 kHz round trip, optional µ-law (G.711-like) coding.

``(samples,)`` float32 at ``sample_rate`` Hz → same shape: a 4th-order Butterworth band-pass
(``band`` Hz, zero-phase), resampled to 8 kHz and back with soxr, and, when ``mulaw``, companded to
8 bits with µ = 255 and expanded again (the quantisation noise of a G.711 line).
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy.signal import butter, sosfiltfilt

PHONE_RATE = 8000
MU = 255.0


def mulaw_round_trip(x: np.ndarray, bits: int = 8) -> np.ndarray:
    """µ-law compress, quantise to ``bits`` bits, expand; input clipped to [-1, 1]."""
    x = np.clip(x, -1.0, 1.0)
    y = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    levels = 2 ** (bits - 1)
    y = np.round(y * levels) / levels
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(MU)) / MU).astype(np.float32)


def telephone(wav: np.ndarray, sample_rate: int, band: tuple[float, float] = (300.0, 3400.0),
              mulaw: bool = True) -> np.ndarray:
    """Band-limit ``wav`` to ``band`` (Hz), round-trip it through 8 kHz, optionally µ-law code it."""
    lo, hi = float(band[0]), float(band[1])
    if not 0 < lo < hi < min(sample_rate, PHONE_RATE) / 2:
        raise ValueError(f"telephone band {band} Hz must satisfy 0 < low < high < {min(sample_rate, PHONE_RATE) / 2}")
    n = len(wav)
    sos = butter(4, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")
    x = sosfiltfilt(sos, wav.astype(np.float64)) if n > 27 else wav.astype(np.float64)
    x = soxr.resample(x.astype(np.float32), sample_rate, PHONE_RATE, quality="HQ")
    if mulaw:
        x = mulaw_round_trip(x)
    y = soxr.resample(x, PHONE_RATE, sample_rate, quality="HQ")
    if len(y) < n:
        y = np.pad(y, (0, n - len(y)))
    return np.ascontiguousarray(y[:n], dtype=np.float32)
