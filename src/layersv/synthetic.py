"""Deterministic synthetic multi-speaker speech corpus.

This module synthesises a small but *learnable* speaker-verification corpus
with a classic source-filter voice model (16 kHz by default):

* **Source** - a Rosenberg glottal-flow pulse train generated from a
  continuous phase (``cumsum(f0 / sr)``), differentiated (lip radiation),
  with jitter / shimmer, a speaker specific spectral tilt and aspiration
  noise (breathiness).
* **Filter** - a cascade of five second-order (Klatt) resonators whose
  formant frequencies follow per-phone targets (10 vowels, 2 nasals) scaled
  by the speaker's vocal-tract-length factor plus small speaker idiosyncratic
  per-vowel offsets.  The cascade runs block-wise with ``scipy.signal.sosfilt``
  carrying the filter state between blocks, so there are no clicks.
* **Frication / bursts** - band-pass filtered noise with smooth (Tukey)
  envelopes for fricatives and stop releases.
* **Per-utterance variability** - random phone content, f0 shift, rate,
  effort (tilt), breathiness, a mild random channel EQ, additive coloured
  noise at a random SNR (18-40 dB) and random loudness.

:func:`generate_corpus` writes a *dataset folder* (fixed contract)::

    <out_dir>/
      data.yaml            (written last; marks a complete folder)
      wav/<spk>/<spk>_<NNN>.wav   16-bit PCM mono
      train.csv / valid.csv / test.csv      path,speaker,duration_s,gender
      valid_trials.csv / test_trials.csv    LABEL,SAMPLE1,SAMPLE2
      speakers.csv   speaker,split,f0_hz,formant_scale,tilt_db_oct,rate,breathiness,gender

Everything is derived from ``seed``: the same seed gives byte-identical files.
Only numpy, scipy and soundfile are required (tqdm optional).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.fft import next_fast_len
from scipy.signal import lfilter, sosfilt
from scipy.signal.windows import tukey
from tqdm.auto import tqdm

from .utils import atomic_write_bytes, atomic_write_text

__all__ = [
    "SpeakerParams",
    "sample_speaker_params",
    "make_speakers",
    "synth_utterance",
    "generate_corpus",
    "GENERATOR_VERSION",
]

#: Bumped whenever the synthesis changes in a way that changes the audio.
GENERATOR_VERSION = 1

# ---------------------------------------------------------------------------
# Phone tables (adult male reference values, Hz; Peterson & Barney style)
# ---------------------------------------------------------------------------
#: Vowels: F1, F2, F3, B1, B2, B3 (Hz)
_VOWELS = np.array(
    [
        [270, 2290, 3010, 60, 90, 150],  # i
        [390, 1990, 2550, 70, 100, 140],  # I
        [530, 1840, 2480, 70, 110, 160],  # E
        [660, 1720, 2410, 80, 110, 170],  # ae
        [730, 1090, 2440, 90, 100, 140],  # a
        [570, 840, 2410, 80, 90, 140],  # O
        [440, 1020, 2240, 70, 90, 130],  # U
        [300, 870, 2240, 60, 80, 130],  # u
        [640, 1190, 2390, 80, 100, 140],  # V
        [490, 1350, 1690, 70, 100, 120],  # 3r
    ],
    dtype=np.float64,
)
#: Nasal murmurs (m, n): F1, F2, F3, B1, B2, B3 (Hz)
_NASALS = np.array(
    [
        [250, 1100, 2300, 100, 200, 250],  # m
        [250, 1500, 2500, 100, 200, 250],  # n
    ],
    dtype=np.float64,
)
_N_VOWELS = len(_VOWELS)
_TARGETS = np.concatenate([_VOWELS, _NASALS])  # row index = formant target id
#: Fixed higher formants F4, F5 and their bandwidths (Hz), scaled per speaker
_F45 = np.array([3300.0, 3850.0])
_B45 = np.array([250.0, 200.0])
#: Fricative / burst noise bands: (centre Hz, bandwidth Hz, relative level)
_FRICS = np.array(
    [
        [5500.0, 2500.0, 0.10],  # s
        [3000.0, 1400.0, 0.14],  # sh
        [4500.0, 6000.0, 0.05],  # f / th (broad, weak)
        [1500.0, 1500.0, 0.25],  # burst, labial
        [4000.0, 2500.0, 0.25],  # burst, alveolar
        [2200.0, 1200.0, 0.25],  # burst, velar
    ]
)
_N_FRIC_PLACES = 3

# segment kinds
_SIL, _VOW, _NAS, _FRI, _VFR, _ASP, _CLO, _BUR = range(8)

_BLOCK_S = 0.020  # formant-trajectory block length (s)


# ---------------------------------------------------------------------------
# Speakers
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SpeakerParams:
    """Ground-truth voice parameters of one synthetic speaker.

    Attributes:
        speaker: speaker id, e.g. ``"spk000"``.
        gender: ``"m"`` or ``"f"`` (controls the f0 / formant cluster).
        f0_hz: mean fundamental frequency in Hz (85-260).
        pitch_range_st: intonation range in semitones (accents / declination).
        formant_scale: dimensionless factor multiplying all formant
            frequencies (~ 1 / vocal-tract length), 0.82-1.22.
        tilt_db_oct: extra spectral tilt of the glottal source above 100 Hz
            in dB/octave (negative = darker voice), on top of the natural
            -6 dB/oct of the differentiated Rosenberg pulse.
        rate: speaking-rate factor (dimensionless, >1 = faster; segment
            durations are divided by it).
        breathiness: aspiration-noise to voiced-source RMS ratio (linear).
        jitter: relative f0 perturbation (fraction, e.g. 0.01 = 1 %).
        shimmer: relative cycle-to-cycle amplitude perturbation (fraction).
        open_quotient: glottal open phase as a fraction of the period.
        vowel_offsets: per target (10 vowels + 2 nasals) multiplicative
            offsets of F1..F3 (dimensionless, ~1 +- 4 %), the speaker's
            idiosyncratic "accent".
        f45_offsets: multiplicative offsets of F4, F5 (dimensionless).
        timbre_eq: three fixed peaking-EQ sections ``(freq_hz, gain_db, q)``
            modelling speaker specific resonances / anti-resonances (e.g.
            piriform fossa, nasal coupling, chest / pharynx) applied to the
            voice; frequencies are further scaled by the formant factor.
    """

    speaker: str
    gender: str
    f0_hz: float
    pitch_range_st: float
    formant_scale: float
    tilt_db_oct: float
    rate: float
    breathiness: float
    jitter: float
    shimmer: float
    open_quotient: float
    vowel_offsets: tuple[tuple[float, float, float], ...]
    f45_offsets: tuple[float, float]
    timbre_eq: tuple[tuple[float, float, float], ...]


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def sample_speaker_params(speaker: str, gender: str, rng: np.random.Generator) -> SpeakerParams:
    """Draw the voice parameters of one speaker (see :class:`SpeakerParams` for units)."""
    if gender not in ("m", "f"):
        raise ValueError(f"gender must be 'm' or 'f', got {gender!r}")
    if gender == "m":
        f0 = _loguniform(rng, 85.0, 155.0)
        fscale = rng.uniform(0.82, 1.04)
    else:
        f0 = _loguniform(rng, 160.0, 260.0)
        fscale = rng.uniform(0.98, 1.22)
    offs = 1.0 + rng.uniform(-0.08, 0.08, size=(len(_TARGETS), 3))
    return SpeakerParams(
        speaker=speaker,
        gender=gender,
        f0_hz=round(f0, 3),
        pitch_range_st=round(float(rng.uniform(2.0, 8.0)), 3),
        formant_scale=round(float(fscale), 4),
        tilt_db_oct=round(float(rng.uniform(-8.0, 0.0)), 3),
        rate=round(_loguniform(rng, 0.8, 1.25), 4),
        breathiness=round(_loguniform(rng, 0.03, 0.35), 4),
        jitter=round(float(rng.uniform(0.002, 0.02)), 4),
        shimmer=round(float(rng.uniform(0.01, 0.12)), 4),
        open_quotient=round(float(rng.uniform(0.45, 0.75)), 4),
        vowel_offsets=tuple(tuple(round(float(v), 4) for v in row) for row in offs),
        f45_offsets=tuple(round(float(v), 4) for v in 1.0 + rng.uniform(-0.06, 0.06, size=2)),
        timbre_eq=(
            (round(_loguniform(rng, 2500.0, 6000.0), 1), round(float(rng.uniform(6.0, 14.0)), 2), round(float(rng.uniform(1.5, 4.0)), 2)),
            (round(_loguniform(rng, 700.0, 5000.0), 1), round(float(rng.uniform(-24.0, -10.0)), 2), round(float(rng.uniform(1.5, 5.0)), 2)),
            (
                round(_loguniform(rng, 250.0, 1500.0), 1),
                round(float(rng.choice([-1.0, 1.0]) * rng.uniform(4.0, 10.0)), 2),
                round(float(rng.uniform(0.8, 2.0)), 2),
            ),
        ),
    )


def make_speakers(num_speakers: int, seed: int = 0) -> list[SpeakerParams]:
    """The deterministic speaker population for ``seed``.

    Speaker ``i`` is ``spk{i:03d}``; genders alternate (m, f, m, ...), so
    contiguous splits are gender balanced.  Each speaker's parameters depend
    only on ``(seed, i)``.
    """
    out = []
    for i in range(num_speakers):
        rng = np.random.default_rng([seed, 1, i])
        out.append(sample_speaker_params(f"spk{i:03d}", "m" if i % 2 == 0 else "f", rng))
    return out


# ---------------------------------------------------------------------------
# Synthesis helpers
# ---------------------------------------------------------------------------
def _make_segments(rng: np.random.Generator, n: int, sr: int, rate: float):
    """Random phone sequence covering exactly ``n`` samples.

    Returns arrays ``kinds, lengths, voice, asp, fric_level, fric_type, target``.
    """
    segs: list[tuple[int, float, float, float, float, int, int]] = []
    # (kind, dur_s, voice_amp, asp_amp, fric_level, fric_type, formant_target)

    def add(kind, dur, voice=0.0, asp=0.0, fric=0.0, ftype=-1, target=-1):
        segs.append((kind, dur, voice, asp, fric, ftype, target))

    tail = rng.uniform(0.06, 0.18)
    add(_SIL, rng.uniform(0.05, 0.2))
    total = segs[0][1]
    limit = n / sr - tail
    while total < limit:
        start = len(segs)
        u = rng.random()
        if u < 0.62:  # onset consonant
            c = rng.integers(0, 6)
            if c == 0:
                add(_NAS, rng.uniform(0.05, 0.09) / rate, voice=0.35, target=_N_VOWELS + int(rng.integers(0, 2)))
            elif c == 1:
                ft = int(rng.integers(0, _N_FRIC_PLACES))
                add(_FRI, rng.uniform(0.07, 0.14) / rate, fric=_FRICS[ft, 2], ftype=ft)
            elif c == 2:
                ft = int(rng.integers(0, _N_FRIC_PLACES))
                add(_VFR, rng.uniform(0.05, 0.10) / rate, voice=0.3, fric=0.6 * _FRICS[ft, 2], ftype=ft)
            elif c == 3:
                add(_ASP, rng.uniform(0.04, 0.08) / rate, asp=0.6)
            else:  # stop: closure + burst
                add(_CLO, rng.uniform(0.04, 0.08) / rate)
                ft = _N_FRIC_PLACES + int(rng.integers(0, 3))
                add(_BUR, rng.uniform(0.008, 0.016), fric=_FRICS[ft, 2], ftype=ft)
        stressed = rng.random() < 0.4
        dur = rng.uniform(0.12, 0.22) if stressed else rng.uniform(0.07, 0.14)
        amp = rng.uniform(0.85, 1.0) if stressed else rng.uniform(0.65, 0.85)
        add(_VOW, dur / rate, voice=amp, target=int(rng.integers(0, _N_VOWELS)))
        if rng.random() < 0.3:  # coda
            if rng.random() < 0.5:
                add(_NAS, rng.uniform(0.05, 0.09) / rate, voice=0.35, target=_N_VOWELS + int(rng.integers(0, 2)))
            else:
                ft = int(rng.integers(0, _N_FRIC_PLACES))
                add(_FRI, rng.uniform(0.07, 0.13) / rate, fric=_FRICS[ft, 2], ftype=ft)
        if rng.random() < 0.12:  # phrase pause
            add(_SIL, rng.uniform(0.12, 0.35))
        total += sum(s[1] for s in segs[start:])
    add(_SIL, tail)

    arr = np.array([s[:5] for s in segs], dtype=np.float64)
    kinds = arr[:, 0].astype(np.int64)
    lengths = np.maximum(1, np.round(arr[:, 1] * sr).astype(np.int64))
    # make the segments cover exactly n samples (trim from the end)
    ends = np.cumsum(lengths)
    keep = int(np.searchsorted(ends, n, side="left")) + 1
    keep = min(keep, len(lengths))
    lengths = lengths[:keep].copy()
    kinds = kinds[:keep]
    lengths[-1] -= int(lengths.sum() - n)
    if lengths[-1] <= 0:  # cannot happen with searchsorted above, but be safe
        lengths[-1] = 1
        lengths[0] += n - int(lengths.sum())
    ftype = np.array([s[5] for s in segs[:keep]], dtype=np.int64)
    target = np.array([s[6] for s in segs[:keep]], dtype=np.int64)
    return kinds, lengths, arr[:keep, 2], arr[:keep, 3], arr[:keep, 4], ftype, target


def _box(x: np.ndarray, win: int) -> np.ndarray:
    """Centred moving average (edge padded) via cumsum."""
    pad = win // 2
    xp = np.pad(x, (pad + 1, win - 1 - pad), mode="edge")
    c = np.cumsum(xp)
    return (c[win:] - c[:-win]) / win


def _smooth(x: np.ndarray, win: int) -> np.ndarray:
    """Triangular smoothing of total length ~``win`` (two box filters)."""
    half = win // 2
    if half <= 1:
        return x
    return _box(_box(x, half), half)


def _smooth_cols(x: np.ndarray, win: int) -> np.ndarray:
    """Hann smoothing of each column of a short (n, k) array (exact on constant runs)."""
    w = np.hanning(win + 2)[1:-1]
    w /= w.sum()
    pad = win // 2
    xp = np.pad(x, ((pad, win - 1 - pad), (0, 0)), mode="edge")
    return np.stack([np.convolve(xp[:, k], w, mode="valid") for k in range(x.shape[1])], axis=1)


def _rosenberg(phi: np.ndarray, oq: float) -> np.ndarray:
    """Rosenberg glottal flow (0..1) at phase ``phi`` in [0, 1)."""
    tp = 0.7 * oq
    tn = 0.3 * oq
    g = np.zeros_like(phi)
    m1 = phi < tp
    g[m1] = 0.5 * (1.0 - np.cos(np.pi * phi[m1] / tp))
    m2 = (~m1) & (phi < tp + tn)
    g[m2] = np.cos(0.5 * np.pi * (phi[m2] - tp) / tn)
    return g


def _bandpass_sos(centre: float, bw: float, sr: int) -> np.ndarray:
    """Two cascaded RBJ constant-peak-gain band-pass biquads (sos, 2 x 6)."""
    centre = min(max(centre, 200.0), 0.42 * sr)
    w0 = 2.0 * np.pi * centre / sr
    q = max(0.3, centre / bw)
    alpha = np.sin(w0) / (2.0 * q)
    a0 = 1.0 + alpha
    row = np.array([alpha, 0.0, -alpha, a0, -2.0 * np.cos(w0), 1.0 - alpha]) / a0
    return np.stack([row, row])


def _vocal_tract(src: np.ndarray, F: np.ndarray, B: np.ndarray, block: int, sr: int) -> np.ndarray:
    """Time-varying cascade of Klatt resonators, constant within each block.

    ``F``, ``B``: (n_blocks, n_formants) in Hz.  Runs of identical blocks are
    filtered with a single call; the state is carried across calls.
    """
    n = len(src)
    r = np.exp(-np.pi * B / sr)
    c1 = 2.0 * r * np.cos(2.0 * np.pi * F / sr)
    c2 = -r * r
    sos = np.zeros(F.shape + (6,))
    sos[..., 0] = 1.0 - c1 - c2  # unity DC gain
    sos[..., 3] = 1.0
    sos[..., 4] = -c1
    sos[..., 5] = -c2
    nb = F.shape[0]
    change = np.ones(nb, dtype=bool)
    change[1:] = np.any(np.abs(F[1:] - F[:-1]) > 3e-3 * F[:-1], axis=1) | np.any(
        np.abs(B[1:] - B[:-1]) > 3e-2 * B[:-1], axis=1
    )
    starts = np.flatnonzero(change)
    out = np.empty_like(src)
    zi = np.zeros((F.shape[1], 2))
    for k, b0 in enumerate(starts):
        b1 = starts[k + 1] if k + 1 < len(starts) else nb
        s0, s1 = b0 * block, min(b1 * block, n)
        if s0 >= n:
            break
        out[s0:s1], zi = sosfilt(sos[b0], src[s0:s1], zi=zi)
    return out


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-20))


def _peaking_eq(f0: float, gain_db: float, q: float, sr: int):
    """RBJ peaking-EQ biquad (b, a)."""
    a_lin = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * f0 / sr
    alpha = np.sin(w0) / (2.0 * q)
    b = np.array([1 + alpha * a_lin, -2 * np.cos(w0), 1 - alpha * a_lin])
    a = np.array([1 + alpha / a_lin, -2 * np.cos(w0), 1 - alpha / a_lin])
    return b / a[0], a / a[0]


def _channel(x: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Mild random channel: high-pass, one peaking EQ, gentle one-pole low-pass."""
    # RBJ 2nd-order high-pass (Q = 0.707)
    w0 = 2.0 * np.pi * rng.uniform(40.0, 150.0) / sr
    alpha = np.sin(w0) / (2.0 * 0.7071)
    cw = np.cos(w0)
    y = lfilter([(1 + cw) / 2, -(1 + cw), (1 + cw) / 2], [1 + alpha, -2 * cw, 1 - alpha], x)
    b, a = _peaking_eq(_loguniform(rng, 300.0, 4000.0), rng.uniform(-3.0, 3.0), rng.uniform(0.7, 2.0), sr)
    y = lfilter(b, a, y)
    p = rng.uniform(0.0, 0.15)
    y = lfilter([1.0 - p], [1.0, -p], y)
    return y


def synth_utterance(
    params: SpeakerParams,
    rng: np.random.Generator,
    sample_rate: int = 16000,
    duration_s: float = 3.0,
    channel: bool = True,
) -> np.ndarray:
    """Synthesise one utterance of speaker ``params``.

    Args:
        params: the speaker's voice (see :class:`SpeakerParams`).
        rng: source of all randomness (content, prosody, channel, noise);
            the output is a deterministic function of the RNG state.
        sample_rate: sampling rate in Hz (>= 8000).
        duration_s: exact output duration in seconds.
        channel: apply the random channel EQ, additive noise (SNR 18-40 dB)
            and random loudness; if False return the clean signal.

    Returns:
        float32 mono waveform of ``round(duration_s * sample_rate)`` samples,
        peak-normalised to ~0.5 (0.5 * random loudness in [-4, 0] dB when
        ``channel`` is True, exactly 0.5 otherwise).
    """
    sr = int(sample_rate)
    if sr < 8000:
        raise ValueError(f"sample_rate must be >= 8000 Hz, got {sr}")
    n = int(round(duration_s * sr))
    if n < int(0.3 * sr):
        raise ValueError(f"duration_s must be >= 0.3 s, got {duration_s}")

    # ---- per-utterance variation of the speaker's voice ------------------
    f0_shift_st = float(np.clip(rng.normal(0.0, 0.7), -1.5, 1.5))
    rate = params.rate * rng.uniform(0.9, 1.1)
    fscale = params.formant_scale * (1.0 + rng.normal(0.0, 0.01))
    tilt = params.tilt_db_oct + rng.normal(0.0, 0.6)
    breath = params.breathiness * rng.uniform(0.8, 1.25)

    kinds, lengths, voice, asp, fric, ftype, target = _make_segments(rng, n, sr, rate)
    nseg = len(lengths)
    seg_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])

    ramp = max(3, int(0.012 * sr))
    voice_env = _smooth(np.repeat(voice, lengths), ramp)
    asp_env = _smooth(np.repeat(asp, lengths), ramp)

    # ---- f0 contour (semitones re. speaker mean), at a 5 ms control rate --
    hop = max(1, int(0.005 * sr))
    nc = n // hop + 2
    tc = np.arange(nc) * hop / sr
    dur = n / sr
    rng_st = params.pitch_range_st
    st = rng.uniform(0.3, 0.6) * rng_st * (0.5 - tc / dur)  # declination
    n_acc = int(rng.poisson(1.3 * dur)) + 1
    centers = rng.uniform(0.0, dur, size=n_acc)
    widths = rng.uniform(0.08, 0.25, size=n_acc)
    heights = rng.uniform(0.2, 0.7, size=n_acc) * rng_st * np.where(rng.random(n_acc) < 0.8, 1.0, -1.0)
    st = st + (heights[:, None] * np.exp(-0.5 * ((tc[None, :] - centers[:, None]) / widths[:, None]) ** 2)).sum(0)
    st = st + _smooth(np.cumsum(rng.normal(0.0, 0.08, size=nc)), 20)  # slow wander
    st = st - st.mean() + f0_shift_st
    jit = rng.normal(0.0, params.jitter, size=nc)
    f0c = params.f0_hz * 2.0 ** (st / 12.0) * (1.0 + jit)
    f0 = np.interp(np.arange(n) / hop, np.arange(nc), f0c)
    f0 = np.clip(f0, 50.0, 0.4 * sr / 10)

    # ---- glottal source ----------------------------------------------------
    phase = rng.uniform() + np.cumsum(f0 / sr)
    cyc = np.floor(phase).astype(np.int64)
    g = _rosenberg(phase - cyc, params.open_quotient)
    dg = np.diff(g, prepend=0.0) * (sr / f0)  # radiation; f0-normalised
    cyc -= cyc[0]
    dg *= 1.0 + params.shimmer * rng.standard_normal(int(cyc[-1]) + 1)[cyc]
    voiced = dg * voice_env
    # spectral tilt (zero-phase, exact dB/oct above 100 Hz)
    nfft = next_fast_len(n + int(0.05 * sr), real=True)  # zero padding avoids wrap-around
    spec = np.fft.rfft(voiced, nfft)
    freqs = np.fft.rfftfreq(nfft, 1.0 / sr)
    spec *= (np.maximum(freqs, 100.0) / 100.0) ** (tilt / (20.0 * np.log10(2.0)))
    voiced = np.fft.irfft(spec, nfft)[:n]
    active = voice_env > 0.3
    ref = _rms(voiced[active]) if active.any() else 1.0
    noise = rng.standard_normal(n)
    aspiration = noise * ref * (breath * voice_env * (0.4 + 0.6 * g) + 0.5 * asp_env)
    source = voiced + aspiration

    # ---- vocal tract: formant trajectories in 10 ms blocks --------------------
    block = max(1, int(round(_BLOCK_S * sr)))
    nb = (n + block - 1) // block
    targ = target.copy()
    Fseg = np.zeros((nseg, 5))
    Bseg = np.zeros((nseg, 5))
    has = targ >= 0
    if not has.any():  # degenerate: no voiced target at all -> neutral vowel
        targ[:] = 8
        has[:] = True
    offs = np.asarray(params.vowel_offsets)
    t_ok = targ[has]
    tok = 1.0 + rng.normal(0.0, 0.03, size=(len(t_ok), 3))  # token variation
    Fseg[has, :3] = _TARGETS[t_ok, :3] * offs[t_ok] * tok
    Bseg[has, :3] = _TARGETS[t_ok, 3:] * rng.uniform(0.85, 1.2, size=(len(t_ok), 1))
    Fseg[has, 3:] = _F45 * np.asarray(params.f45_offsets)
    Bseg[has, 3:] = _B45
    Fseg[has] *= fscale
    # forward fill segments without a target (hold previous formants)
    idx = np.where(has, np.arange(nseg), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = int(np.flatnonzero(has)[0])
    seg_of_block = np.searchsorted(np.cumsum(lengths), np.arange(nb) * block + block // 2, side="right")
    seg_of_block = np.minimum(seg_of_block, nseg - 1)
    Fb = np.log(Fseg[idx][seg_of_block])
    Bb = Bseg[idx][seg_of_block]
    sm = 3  # ~60 ms coarticulation
    Fb = np.exp(_smooth_cols(Fb, sm))
    Bb = _smooth_cols(Bb, sm)
    Fb = np.minimum(Fb, 0.46 * sr)
    out = _vocal_tract(source, Fb, Bb, block, sr)
    for f_eq, g_eq, q_eq in params.timbre_eq:
        b_eq, a_eq = _peaking_eq(min(f_eq * fscale, 0.45 * sr), g_eq, q_eq, sr)
        out = lfilter(b_eq, a_eq, out)

    # ---- frication and bursts --------------------------------------------------
    vt_active = voice_env > 0.3
    ref_out = _rms(out[vt_active]) if vt_active.any() else _rms(out)
    pad = int(0.008 * sr)
    for s in np.flatnonzero(fric > 0):
        a = max(0, int(seg_start[s]) - pad)
        b = min(n, int(seg_start[s] + lengths[s]) + pad)
        L = b - a
        if L < 4:
            continue
        c, bw, _ = _FRICS[ftype[s]]
        c = c * np.sqrt(fscale)
        sos = _bandpass_sos(c, bw, sr)
        nz = sosfilt(sos, rng.standard_normal(L))
        nz *= tukey(L, alpha=min(1.0, 2.0 * pad / L) if kinds[s] != _BUR else 0.8)
        out[a:b] += nz * (fric[s] * rng.uniform(0.7, 1.3) * ref_out / (_rms(nz) + 1e-12))

    # ---- channel, noise, loudness -----------------------------------------------
    peak_target = 0.5
    if channel:
        out = _channel(out, rng, sr)
        snr_db = rng.uniform(18.0, 40.0)
        bg = rng.standard_normal(n)
        col = rng.uniform(0.5, 0.95)
        bg = lfilter([1.0], [1.0, -col], bg)
        bg *= _rms(out) / _rms(bg) * 10.0 ** (-snr_db / 20.0)
        out = out + bg
        peak_target = 0.5 * 10.0 ** (rng.uniform(-4.0, 0.0) / 20.0)
    peak = float(np.max(np.abs(out)))
    if peak > 0:
        out = out * (peak_target / peak)
    return out.astype(np.float32)


# ---------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------
_SPLITS = ("train", "valid", "test")
_MARKER = ".synthetic_in_progress.json"
_OUR_FILES = (
    "data.yaml",
    "train.csv",
    "valid.csv",
    "test.csv",
    "valid_trials.csv",
    "test_trials.csv",
    "speakers.csv",
    _MARKER,
)


def _atomic_write_wav(path: Path, wav: np.ndarray, sr: int) -> None:
    buf = io.BytesIO()
    sf.write(buf, wav, sr, subtype="PCM_16", format="WAV")
    atomic_write_bytes(path, buf.getvalue())


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _make_trials(paths: list[str], speakers: list[str], rng: np.random.Generator) -> list[tuple[int, str, str]]:
    """All target pairs + equally many random non-target pairs (unordered, unique)."""
    n = len(paths)
    spk = np.asarray(speakers)
    i, j = np.triu_indices(n, k=1)
    same = spk[i] == spk[j]
    tgt_i, tgt_j = i[same], j[same]
    non_i, non_j = i[~same], j[~same]
    n_t = len(tgt_i)
    if len(non_i) < n_t:
        raise ValueError("not enough different-speaker pairs to balance the trial list")
    pick = np.sort(rng.choice(len(non_i), size=n_t, replace=False))
    trials = []
    for lab, ii, jj in ((1, tgt_i, tgt_j), (0, non_i[pick], non_j[pick])):
        for a, b in zip(ii.tolist(), jj.tolist()):
            p, q = sorted((paths[a], paths[b]))
            trials.append((lab, p, q))
    trials.sort(key=lambda t: (t[1], t[2], -t[0]))
    return trials


def _yaml_scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # JSON strings are valid YAML


def _data_yaml(gen: dict, splits: dict[str, list[str]], n_utts: int) -> str:
    lines = [
        "name: synthetic",
        "audio_root: wav",
        f"sample_rate: {gen['sample_rate']}",
        f"seed: {gen['seed']}",
        f"num_speakers: {gen['num_speakers']}",
        f"num_utterances: {n_utts}",
        "splits:",
        *[f"  {s}: {s}.csv" for s in _SPLITS],
        "trials:",
        "  valid: valid_trials.csv",
        "  test: test_trials.csv",
        "speakers_csv: speakers.csv",
        "speakers:",
    ]
    for s in _SPLITS:
        lines.append(f"  {s}: [{', '.join(splits[s])}]")
    lines.append("generator:")
    for k, v in gen.items():
        if isinstance(v, (list, tuple)):
            lines.append(f"  {k}: [{', '.join(_yaml_scalar(x) for x in v)}]")
        else:
            lines.append(f"  {k}: {_yaml_scalar(v)}")
    return "\n".join(lines) + "\n"


def _read_generator_block(path: Path) -> dict | None:
    """Parse the ``generator:`` block of a data.yaml written by this module."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    gen: dict = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("generator:"):
            inside = True
            continue
        if inside:
            if not line.startswith("  "):
                break
            k, _, v = line.strip().partition(":")
            gen[k.strip()] = v.strip()
    if not inside or not any(line.strip() == "name: synthetic" for line in text.splitlines()):
        return None
    return gen


def _gen_as_strings(gen: dict) -> dict:
    out = {}
    for k, v in gen.items():
        if isinstance(v, (list, tuple)):
            out[k] = f"[{', '.join(_yaml_scalar(x) for x in v)}]"
        else:
            out[k] = _yaml_scalar(v)
    return out


def _is_complete(out: Path) -> bool:
    """All tables present and every listed wav file exists."""
    names = ("train.csv", "valid.csv", "test.csv", "valid_trials.csv", "test_trials.csv", "speakers.csv")
    if not all((out / n).is_file() for n in names):
        return False
    for s in _SPLITS:
        with open(out / f"{s}.csv", newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if not (out / "wav" / row["path"]).is_file():
                    return False
    return True


def _clean(out: Path) -> None:
    for name in _OUR_FILES:
        p = out / name
        if p.exists():
            p.unlink()
    if (out / "wav").exists():
        shutil.rmtree(out / "wav")


def _progress(it, total: int, enabled: bool, desc: str):
    if not enabled:
        return it
    return tqdm(it, total=total, desc=desc, unit="utt")


def generate_corpus(
    out_dir: str | Path,
    num_speakers: int = 48,
    utts_per_speaker: int = 8,
    split: tuple[int, int, int] = (32, 8, 8),
    seed: int = 0,
    sample_rate: int = 16000,
    min_sec: float = 2.0,
    max_sec: float = 4.5,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Generate (or reuse) a synthetic speaker-verification dataset folder.

    Args:
        out_dir: target folder (created if needed).
        num_speakers: total number of speakers; must equal ``sum(split)``.
        utts_per_speaker: utterances per speaker (>= 2).
        split: number of (train, valid, test) speakers; splits are disjoint,
            contiguous in speaker index (spk000.. are train), each >= 2.
        seed: master seed; identical arguments give byte-identical files.
        sample_rate: Hz.
        min_sec, max_sec: utterance duration range in seconds (uniform).
        progress: show a tqdm bar (if tqdm is installed).
        overwrite: regenerate even if a complete identical corpus exists, and
            allow writing into a non-empty folder not created by this module
            (only this module's files are removed).

    Returns:
        ``Path`` of the dataset folder (contains ``data.yaml``).

    If ``out_dir/data.yaml`` exists and was written with identical arguments,
    the folder is returned untouched.  An interrupted generation with the
    same arguments is resumed (already written wav files are reused; every
    file is written atomically and ``data.yaml`` is written last).
    """
    # ---- validation -------------------------------------------------------------
    if not isinstance(num_speakers, (int, np.integer)) or num_speakers < 6:
        raise ValueError(f"num_speakers must be an int >= 6, got {num_speakers!r}")
    if len(split) != 3 or any((not isinstance(s, (int, np.integer))) or s < 2 for s in split):
        raise ValueError(f"split must be 3 ints (train, valid, test), each >= 2, got {split!r}")
    if sum(split) != num_speakers:
        raise ValueError(f"split {tuple(split)} must sum to num_speakers={num_speakers} (sum is {sum(split)})")
    if not isinstance(utts_per_speaker, (int, np.integer)) or utts_per_speaker < 2:
        raise ValueError(f"utts_per_speaker must be an int >= 2, got {utts_per_speaker!r}")
    if utts_per_speaker > 999:
        raise ValueError("utts_per_speaker must be <= 999")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate < 8000:
        raise ValueError(f"sample_rate must be an int >= 8000, got {sample_rate!r}")
    if not (0.5 <= float(min_sec) <= float(max_sec)):
        raise ValueError(f"need 0.5 <= min_sec <= max_sec, got min_sec={min_sec}, max_sec={max_sec}")
    if num_speakers > 1000:
        raise ValueError("num_speakers must be <= 1000")

    out = Path(out_dir)
    gen = {
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "num_speakers": int(num_speakers),
        "utts_per_speaker": int(utts_per_speaker),
        "split": [int(s) for s in split],
        "sample_rate": int(sample_rate),
        "min_sec": float(min_sec),
        "max_sec": float(max_sec),
    }
    gen_str = _gen_as_strings(gen)
    marker_text = json.dumps(gen, sort_keys=True) + "\n"

    # ---- reuse / resume / refuse ---------------------------------------------------
    resume = False
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"{out} exists and is not a directory")
        existing = _read_generator_block(out / "data.yaml")
        same = existing is not None and existing == gen_str
        if same and not overwrite:
            if _is_complete(out):
                return out
            resume = True  # identical parameters but files went missing: repair
            (out / "data.yaml").unlink()
        marker = out / _MARKER
        ours = existing is not None or marker.exists()
        if not overwrite and marker.exists() and existing is None:
            try:
                resume = marker.read_text(encoding="utf-8") == marker_text
            except OSError:
                resume = False
        if not resume:
            if any(out.iterdir()) and not ours and not overwrite:
                raise FileExistsError(
                    f"{out} is not empty and does not contain a synthetic corpus; "
                    "pass overwrite=True to write into it"
                )
            _clean(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / _MARKER, marker_text)

    # ---- speakers and splits -------------------------------------------------------
    speakers = make_speakers(num_speakers, seed)
    bounds = np.cumsum([0, *split])
    split_of = {}
    splits: dict[str, list[str]] = {}
    for k, name in enumerate(_SPLITS):
        ids = [sp.speaker for sp in speakers[bounds[k] : bounds[k + 1]]]
        splits[name] = ids
        for s in ids:
            split_of[s] = name

    # ---- audio -----------------------------------------------------------------------
    wav_root = out / "wav"
    rows: dict[str, list[list]] = {s: [] for s in _SPLITS}
    jobs = [(si, u) for si in range(num_speakers) for u in range(1, utts_per_speaker + 1)]
    for si, u in _progress(jobs, len(jobs), progress, "synthetic corpus"):
        sp = speakers[si]
        rel = f"{sp.speaker}/{sp.speaker}_{u:03d}.wav"
        path = wav_root / rel
        rng = np.random.default_rng([int(seed), 2, si, u])
        dur = float(rng.uniform(min_sec, max_sec))
        n = int(round(dur * sample_rate))
        done = False
        if resume and path.exists():
            try:
                info = sf.info(str(path))
                done = info.frames == n and info.samplerate == sample_rate
            except Exception:
                done = False
        if not done:
            path.parent.mkdir(parents=True, exist_ok=True)
            wav = synth_utterance(sp, rng, sample_rate, n / sample_rate)
            _atomic_write_wav(path, wav, sample_rate)
        rows[split_of[sp.speaker]].append([rel, sp.speaker, f"{n / sample_rate:.4f}", sp.gender])

    # ---- tables ------------------------------------------------------------------------
    header = ["path", "speaker", "duration_s", "gender"]
    for s in _SPLITS:
        atomic_write_text(out / f"{s}.csv", _csv_text(header, rows[s]))
    for k, s in ((1, "valid"), (2, "test")):
        trials = _make_trials([r[0] for r in rows[s]], [r[1] for r in rows[s]], np.random.default_rng([int(seed), 3, k]))
        atomic_write_text(out / f"{s}_trials.csv", _csv_text(["LABEL", "SAMPLE1", "SAMPLE2"], [list(t) for t in trials]))
    spk_rows = [
        [sp.speaker, split_of[sp.speaker], sp.f0_hz, sp.formant_scale, sp.tilt_db_oct, sp.rate, sp.breathiness, sp.gender]
        for sp in speakers
    ]
    atomic_write_text(
        out / "speakers.csv",
        _csv_text(["speaker", "split", "f0_hz", "formant_scale", "tilt_db_oct", "rate", "breathiness", "gender"], spk_rows),
    )
    # data.yaml last: its presence marks a complete folder
    atomic_write_text(out / "data.yaml", _data_yaml(gen, splits, len(jobs)))
    try:
        (out / _MARKER).unlink()
    except OSError:
        pass
    return out
