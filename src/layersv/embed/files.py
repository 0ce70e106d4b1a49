"""Embeddings of waveforms and audio files of any length (inference: ``layersv embed``, verify, enrol).

Long files are cut into ``chunk_sec`` windows (default 20 s) overlapping by ``overlap_sec``;
the last window is aligned to the end of the file so every window has the same length and
they run as one padding-free batch.  The utterance embedding is the mean of the L2-normalised
window embeddings, re-normalised (raw norm: the mean raw norm).  Files of at most
``chunk_sec`` are embedded whole, exactly as ``layersv eval`` embeds full utterances.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.audio import AudioError, audio_info, load_audio
from ..model import load_model
from ..utils import atomic_write_bytes
from .run_cache import crop_starts

MIN_SEC = 0.5  # shorter input is refused: too few frames for a meaningful embedding
LIST_SUFFIXES = (".txt", ".lst", ".list", ".scp")


@dataclass
class FileEmbedding:
    embedding: np.ndarray  # (E,) L2-normalised
    raw_norm: float  # L2 norm of the raw embedding (mean over windows)
    duration: float  # seconds (the whole file)


def windows(n: int, win: int, hop: int) -> list[int]:
    """Start samples of ``win``-sample windows every ``hop`` samples, the last one ending at ``n``."""
    if n <= win:
        return [0]
    starts = list(range(0, n - win, hop))
    return starts + [n - win]


@torch.no_grad()
def embed_waveform(model, wav: np.ndarray, sample_rate: int, chunk_sec: float = 20.0, overlap_sec: float = 2.0,
                   n_crops: int = 0, crop_sec: float = 3.0, batch: int = 8) -> tuple[np.ndarray, float]:
    """``wav (samples,)`` at the model rate → (unit embedding ``(E,)``, raw norm).

    ``n_crops`` > 0 uses the evaluation's ECAPA-style crops instead of chunks.
    """
    n = len(wav)
    if n_crops:
        win = min(n, int(round(crop_sec * sample_rate)))
        starts = [int(round(s * sample_rate)) for s in crop_starts(n / sample_rate, n_crops, crop_sec)]
    else:
        win = min(n, int(round(chunk_sec * sample_rate)))
        starts = windows(n, win, max(1, win - int(round(overlap_sec * sample_rate))))
    segs = torch.from_numpy(np.stack([wav[s : s + win] for s in starts]))  # (C, win)
    was_training = model.training
    model.eval()
    dev = next(iter([*model.parameters(), *model.buffers()]), torch.empty(0)).device  # Stats: buffers only
    embs = []
    for i in range(0, len(segs), batch):
        x = segs[i : i + batch].to(dev)
        embs.append(model(x, torch.full((len(x),), win, dtype=torch.long, device=dev)).float().cpu())
    model.train(was_training)
    e = torch.cat(embs).double()
    mean = F.normalize(F.normalize(e, dim=-1).mean(0), dim=0)
    return mean.float().numpy(), float(e.norm(dim=-1).mean())


def embed_file_full(model, path: str | Path, chunk_sec: float = 20.0, overlap_sec: float = 2.0,
                    n_crops: int = 0, crop_sec: float = 3.0, min_sec: float = MIN_SEC) -> FileEmbedding:
    """Embed one audio file; raises :class:`AudioError` naming the file if missing, corrupt or too short."""
    sr = int(getattr(model, "sample_rate", 16000))
    wav = load_audio(path, sr, min_duration_sec=min_sec)
    if not np.any(wav):
        raise AudioError(f"{path}: digital silence (all samples are zero)")
    e, norm = embed_waveform(model, wav, sr, chunk_sec, overlap_sec, n_crops, crop_sec)
    return FileEmbedding(e, norm, len(wav) / sr)


def embed_file(model, path: str | Path, chunk_sec: float = 20.0, overlap_sec: float = 2.0) -> np.ndarray:
    """L2-normalised embedding ``(E,)`` of an audio file of any length (was ``SpeakerEncoder.embed_file``).

    Files longer than ``chunk_sec`` are embedded in overlapping windows whose embeddings are averaged;
    unreadable or too short files raise AudioError.
    """
    return embed_file_full(model, path, chunk_sec, overlap_sec).embedding


def expand_inputs(items: list[str]) -> list[str]:
    """Audio paths from arguments: audio files, or list files (one path per line, ``#`` comments)."""
    out = []
    for it in items:
        p = Path(it)
        if p.suffix.lower() in LIST_SUFFIXES:
            if not p.is_file():
                raise FileNotFoundError(f"list file not found: {p}")
            for line in p.read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    q = Path(line)
                    out.append(str(q if q.is_absolute() else p.parent / q))
        else:
            out.append(it)
    if not out:
        raise ValueError("no audio files given")
    return out


def embed_files(run: str | Path, items: list[str], out: str | Path, device: str = "cpu",
                chunk_sec: float = 20.0, progress: bool = False) -> Path:
    """``layersv embed``: embed files (or list files) with a run's best model → ``out.npz``.

    The archive holds ``keys`` (the paths as given), ``matrix (N, E)`` (unit norm),
    ``raw_norms (N,)`` and ``durations (N,)`` seconds.  Every file is checked first; one error
    lists all unreadable ones.
    """
    paths = expand_inputs(items)
    problems = []
    for p in paths:
        try:
            audio_info(p)
        except AudioError as e:
            problems.append(str(e))
    if problems:
        raise AudioError(f"{len(problems)} unreadable file(s):\n  " + "\n  ".join(problems[:20]))
    model = load_model(run, device)
    res = [embed_file_full(model, p, chunk_sec) for p in tqdm(paths, disable=not progress, desc="embed")]
    buf = io.BytesIO()
    np.savez(buf, keys=np.asarray(paths), matrix=np.stack([r.embedding for r in res]),
             raw_norms=np.array([r.raw_norm for r in res]), durations=np.array([r.duration for r in res]))
    out = Path(out)
    atomic_write_bytes(out, buf.getvalue())
    return out


def embed_for_scoring(model, path: str | Path, pipe) -> FileEmbedding:
    """Embed a file the way the run's stored scoring state ``pipe`` (a ScoringPipeline) expects: its
    ``extraction`` settings (crops, if any)."""
    ex = pipe.extraction
    return embed_file_full(model, path, n_crops=int(ex.get("n_crops", 0)), crop_sec=float(ex.get("crop_sec", 3.0)))
