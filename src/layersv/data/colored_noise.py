"""Coloured Gaussian noise for additive augmentation without a noise corpus.

Power spectral density ``∝ 1 / f^α``: white (α = 0), pink (α = 1, −3 dB/octave), brown (α = 2,
−6 dB/octave).  White Gaussian noise is shaped in the frequency domain (rFFT, amplitude ``f^(−α/2)``,
DC removed), then scaled to unit mean power; the caller sets the level (``augment.mix_at_snr``).
"""

from __future__ import annotations

import numpy as np

COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # name → exponent α of the 1/f^α PSD


def colored_noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` float32 noise of unit mean power with a ``1/f^α`` spectrum (``color`` in :data:`COLORS`)."""
    if color not in COLORS:
        raise ValueError(f"unknown noise colour {color!r}; valid: {', '.join(COLORS)}")
    if n <= 0:
        raise ValueError(f"noise length must be positive, got {n}")
    white = rng.standard_normal(n)
    alpha = COLORS[color]
    if alpha == 0.0 or n < 4:
        x = white - white.mean()
    else:
        spec = np.fft.rfft(white)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        spec *= f ** (-alpha / 2)
        spec[0] = 0.0
        x = np.fft.irfft(spec, n)
    p = float(np.mean(np.square(x)))
    return (x / np.sqrt(p) if p > 0 else x).astype(np.float32)
