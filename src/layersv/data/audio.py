"""Audio I/O: read mono float32 waveforms at a target rate, with errors that name the file.

soundfile decodes WAV/FLAC/OGG (and MP3 with libsndfile ≥ 1.1); soxr resamples (VHQ).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class AudioError(ValueError):
    """A file that cannot be used: missing, unreadable, empty or too short."""


@dataclass(frozen=True)
class AudioInfo:
    frames: int  # samples per channel
    sample_rate: int  # Hz
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: str | os.PathLike) -> AudioInfo:
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"{p}: file not found")
    try:
        i = sf.info(str(p))
    except Exception as e:  # soundfile raises RuntimeError / LibsndfileError
        raise AudioError(f"{p}: unreadable audio ({e})") from None
    if i.frames <= 0:
        raise AudioError(f"{p}: empty audio")
    return AudioInfo(int(i.frames), int(i.samplerate), int(i.channels))


def content_problem(path: str | os.PathLike, block: int = 4000) -> str | None:
    """``None`` for usable samples, else why not: NaN/inf samples or digital silence (all zero).

    Cheap for the common case: three ``block``-frame excerpts (start, middle, end) show a non-zero
    sample in any real recording; only all-zero excerpts, or float formats (the only ones that can
    hold NaN), trigger a full read.
    """
    try:
        with sf.SoundFile(str(path)) as f:
            n = f.frames
            if f.subtype not in ("FLOAT", "DOUBLE") and f.seekable():
                for start in sorted({0, max(0, n // 2 - block // 2), max(0, n - block)}):
                    f.seek(start)
                    if np.any(f.read(block, dtype="float32")):
                        return None
                f.seek(0)
            nonzero = False
            for x in f.blocks(blocksize=1 << 16, dtype="float32"):
                if not np.isfinite(x).all():
                    return f"{path}: audio contains NaN or infinite samples"
                nonzero = nonzero or bool(np.any(x))
    except Exception as e:
        return f"{path}: cannot decode audio ({e})"
    return None if nonzero else f"{path}: digital silence (all samples are zero)"


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``(samples,)`` float32 at ``orig_sr`` → ``target_sr`` (soxr very-high quality)."""
    if orig_sr == target_sr:
        return wav
    return soxr.resample(wav, orig_sr, target_sr, quality="VHQ").astype(np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int | None = None, start_sec: float = 0.0,
               duration_sec: float | None = None, min_duration_sec: float = 0.0) -> np.ndarray:
    """Read ``path`` as mono float32 in [-1, 1], ``(samples,)``, resampled to ``sample_rate``.

    ``start_sec``/``duration_sec`` read only a segment (seconds, in the file's time base).
    Multi-channel audio is mixed down by averaging.  Raises :class:`AudioError` naming the
    file when it is missing, unreadable, empty, or shorter than ``min_duration_sec`` seconds.
    """
    info = audio_info(path)
    start = int(round(start_sec * info.sample_rate))
    stop = None if duration_sec is None else start + int(round(duration_sec * info.sample_rate))
    try:
        wav, sr = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"{path}: cannot decode audio ({e})") from None
    wav = wav.mean(axis=1) if wav.shape[1] > 1 else wav[:, 0]
    if wav.size == 0:
        raise AudioError(f"{path}: no samples in the requested segment")
    if not np.isfinite(wav).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    if sample_rate is not None:
        wav = resample(wav, sr, sample_rate)
        sr = sample_rate
    if wav.shape[0] < min_duration_sec * sr:
        raise AudioError(f"{path}: too short ({wav.shape[0] / sr:.3f} s < {min_duration_sec} s)")
    return np.ascontiguousarray(wav, dtype=np.float32)
