"""On-the-fly training augmentation of LAP (Kim et al., "Rethinking Leveraging Pre-Trained Multi-Layer
Representations for Speaker Verification", seeds-spec §4.5), after voxceleb_trainer.

With probability ``prob`` one augmentation is drawn uniformly from the available kinds:
  * ``reverb``: a random RIR, energy-normalised, full convolution truncated to the input length;
  * ``noise``: one MUSAN-noise segment at SNR ~ U[noise_snr];
  * ``music``: one MUSAN-music segment at SNR ~ U[music_snr];
  * ``babble``: 4–7 MUSAN-speech segments, each at SNR ~ U[babble_snr].
SNR is exact: ``gain = sqrt(P_clean / (P_noise · 10^(SNR/10)))`` with mean powers (LAP adds 1e-4 to
both powers, which biases the SNR of quiet clips; fixed here).  Noise is wrap-padded/cropped to the
input length at a random offset.  Speed perturbation (0.9 / 1.1 as new speaker classes) lives in
:class:`layersv.data.dataset.TrainCrops`, since it changes the label.
All randomness comes from the ``rng`` passed in (the stream index's generator), so it is deterministic.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve

from .audio import load_audio
from .folder import DatasetError

KINDS = ("reverb", "noise", "music", "babble")


@dataclass(frozen=True)
class NoiseSegment:
    path: str  # absolute
    category: str  # music | speech | noise
    start_s: float
    duration_s: float


def _list_file(path: str | os.PathLike, kind: str) -> tuple[Path, Path]:
    """(``<kind>.csv`` written by ``layersv prepare <kind>``, the audio root its paths are relative to)."""
    import yaml

    p = Path(path)
    if p.is_dir():
        p = p / f"{kind}.csv"
    if not p.is_file():
        raise DatasetError(f"{kind.upper()} list not found: {p} (run `layersv prepare {kind} SRC DIR`)")
    meta_p = p.parent / "data.yaml"
    root = Path(yaml.safe_load(meta_p.read_text()).get("audio_root", p.parent)) if meta_p.is_file() else p.parent
    return p, root


def read_musan_list(path: str | os.PathLike) -> list[NoiseSegment]:
    """``musan.csv`` written by ``layersv prepare musan`` (or its folder) → segments with absolute paths."""
    p, root = _list_file(path, "musan")
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"path", "category"} <= set(rows[0]):
        raise DatasetError(f"{p}: needs the columns path,category[,start_s,duration_s]")
    return [NoiseSegment(str(root / r["path"]), r["category"], float(r.get("start_s") or 0),
                         float(r.get("duration_s") or 0)) for r in rows]


def read_rir_list(path: str | os.PathLike) -> list[str]:
    p, root = _list_file(path, "rir")
    with open(p, newline="") as f:
        return [str(root / r["path"]) for r in csv.DictReader(f)]


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean + g·noise`` with ``10·log10(P_clean / P(g·noise)) = snr_db`` (both ``(samples,)``)."""
    pn = power(noise)
    if pn <= 0:
        return clean
    g = np.sqrt(power(clean) / (pn * 10 ** (snr_db / 10)))
    return (clean + g * noise).astype(np.float32)


def reverberate(wav: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Energy-normalised RIR, full convolution truncated to ``len(wav)``."""
    rir = rir / max(np.sqrt(power(rir) * len(rir)), 1e-12)
    return fftconvolve(wav, rir)[: len(wav)].astype(np.float32)


def fit_length(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Random crop to ``n`` samples, or wrap-pad from a random phase when shorter."""
    if len(x) >= n:
        s = int(rng.integers(0, len(x) - n + 1))
        return x[s:s + n]
    return np.roll(np.resize(x, n), int(rng.integers(0, len(x))))


class Augmenter:
    """Draws and applies one augmentation per call: ``(samples,)`` float32 → same shape.

    Args:
        musan: noise segments (may be empty); rirs: RIR file paths (may be empty).
        sample_rate: rate of the waveforms (Hz); prob: probability of augmenting at all.
        kinds: subset of ``KINDS`` to draw from (kinds without material are dropped).
        noise_snr / music_snr / babble_snr: (low, high) dB; babble_count: (min, max) speakers.
    """

    def __init__(self, musan: list[NoiseSegment], rirs: list[str], sample_rate: int, prob: float,
                 kinds: tuple[str, ...] = KINDS, noise_snr: tuple[float, float] = (0.0, 15.0),
                 music_snr: tuple[float, float] = (5.0, 15.0), babble_snr: tuple[float, float] = (13.0, 20.0),
                 babble_count: tuple[int, int] = (4, 7)):
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise ValueError(f"unknown augmentation(s) {bad}; valid: {list(KINDS)}")
        self.sample_rate, self.prob = sample_rate, prob
        self.pools = {c: [s for s in musan if s.category == c] for c in ("noise", "music", "speech")}
        self.rirs = list(rirs)
        have = {"reverb": bool(self.rirs), "noise": bool(self.pools["noise"]), "music": bool(self.pools["music"]),
                "babble": bool(self.pools["speech"])}
        self.kinds = tuple(k for k in kinds if have[k])
        if prob > 0 and not self.kinds:
            raise DatasetError(f"augmentation asked for ({list(kinds)}) but no MUSAN/RIR material was given for them")
        self.snr = {"noise": noise_snr, "music": music_snr, "speech": babble_snr}
        self.babble_count = babble_count

    def _noise(self, cat: str, n: int, rng: np.random.Generator) -> np.ndarray:
        seg = self.pools[cat][int(rng.integers(len(self.pools[cat])))]
        x = load_audio(seg.path, self.sample_rate, seg.start_s, seg.duration_s or None)
        return fit_length(x, n, rng)

    def apply(self, wav: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
        if kind == "reverb":
            return reverberate(wav, load_audio(self.rirs[int(rng.integers(len(self.rirs)))], self.sample_rate))
        cat = "speech" if kind == "babble" else kind
        count = int(rng.integers(self.babble_count[0], self.babble_count[1] + 1)) if kind == "babble" else 1
        noise = np.zeros_like(wav)
        for _ in range(count):  # each babble talker at its own SNR (as LAP), summed
            lo, hi = self.snr[cat]
            noise += mix_at_snr(wav, self._noise(cat, len(wav), rng), float(rng.uniform(lo, hi))) - wav
        return (wav + noise).astype(np.float32)

    def __call__(self, wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.prob <= 0 or rng.random() >= self.prob:
            return wav
        return self.apply(wav, self.kinds[int(rng.integers(len(self.kinds)))], rng)


def build_augmenter(data_cfg, sample_rate: int) -> Augmenter | None:
    """Factory: an :class:`Augmenter` from ``DataConfig`` fields, or None when ``aug_prob`` is 0."""
    if data_cfg.aug_prob <= 0:
        return None
    musan = read_musan_list(data_cfg.musan_list) if data_cfg.musan_list else []
    rirs = read_rir_list(data_cfg.rir_list) if data_cfg.rir_list else []
    return Augmenter(musan, rirs, sample_rate, data_cfg.aug_prob, tuple(data_cfg.aug_kinds),
                     tuple(data_cfg.noise_snr), tuple(data_cfg.music_snr), tuple(data_cfg.babble_snr),
                     tuple(int(x) for x in data_cfg.babble_count))
