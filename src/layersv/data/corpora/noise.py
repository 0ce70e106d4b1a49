"""MUSAN (OpenSLR 17) and RIR (OpenSLR 28 "RIRS_NOISES") lists for on-the-fly augmentation.

MUSAN: every ``music|speech|noise/**.wav`` is cut into segments of ``chunk_sec`` = 5 s with a hop of
``hop_sec`` = 3 s (as LAP's ``musan_split``), listed as rows ``path,category,start_s,duration_s`` — no
audio is copied; the augmenter reads the segment.  A file shorter than one chunk is one segment.
RIR: the simulated small/medium/large rooms and the real isotropic RIRs (files named ``*rir*``),
listed as ``path,kind,room``.  Both write ``data.yaml`` (kind: noise) and the list into ``DATA_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ...utils import atomic_write_text
from ..audio import AudioError, audio_info
from ..dataset_folder import DatasetError
from .common import list_audio, require_dir, write_csv

MUSAN_CATEGORIES = ("music", "speech", "noise")


def prepare_musan(src: str | os.PathLike, data_dir: str | os.PathLike, chunk_sec: float = 5.0,
                  hop_sec: float = 3.0) -> Path:
    """Write ``musan.csv`` (segments) into ``data_dir``; ``src`` is the folder holding music/speech/noise."""
    src = require_dir(src, "MUSAN folder")
    if not (src / "noise").is_dir() and (src / "musan").is_dir():
        src = src / "musan"
    if chunk_sec <= 0 or hop_sec <= 0:
        raise ValueError(f"chunk_sec and hop_sec must be > 0, got {chunk_sec}, {hop_sec}")
    rows, bad = [], []
    for cat in MUSAN_CATEGORIES:
        d = src / cat
        if not d.is_dir():
            continue
        for p in list_audio(d, (".wav",)):
            try:
                dur = audio_info(p).duration
            except AudioError as e:
                bad.append(str(e))
                continue
            starts = [0.0] if dur <= chunk_sec else [i * hop_sec for i in range(int((dur - chunk_sec) // hop_sec) + 1)]
            for s in starts:
                rows.append({"path": p.relative_to(src).as_posix(), "category": cat, "start_s": round(s, 3),
                             "duration_s": round(min(chunk_sec, dur - s), 3)})
    if bad:
        raise DatasetError(f"{len(bad)} unreadable MUSAN file(s):\n  " + "\n  ".join(bad[:10]))
    if not rows:
        raise DatasetError(f"{src}: no wav files under {'/'.join(MUSAN_CATEGORIES)}/")
    out = Path(data_dir).expanduser().resolve()
    write_csv(out / "musan.csv", rows)
    cats = {c: sum(r["category"] == c for r in rows) for c in MUSAN_CATEGORIES}
    atomic_write_text(out / "data.yaml", yaml.safe_dump({"name": "musan", "kind": "noise", "audio_root": str(src),
                                                         "chunk_s": chunk_sec, "hop_s": hop_sec, "segments": cats}))
    return out


def prepare_rir(src: str | os.PathLike, data_dir: str | os.PathLike, real: bool = True) -> Path:
    """Write ``rir.csv`` into ``data_dir``; ``src`` is ``RIRS_NOISES`` (or its parent)."""
    src = require_dir(src, "RIR folder")
    if (src / "RIRS_NOISES").is_dir():
        src = src / "RIRS_NOISES"
    rows = []
    sim = src / "simulated_rirs"
    for p in list_audio(sim, (".wav",)) if sim.is_dir() else []:
        rel = p.relative_to(sim).parts
        rows.append({"path": p.relative_to(src).as_posix(), "kind": "simulated", "room": rel[0]})
    iso = src / "real_rirs_isotropic_noises"
    if real and iso.is_dir():
        for p in list_audio(iso, (".wav",)):
            if "rir" in p.name.lower():
                rows.append({"path": p.relative_to(src).as_posix(), "kind": "real", "room": p.stem.split("_")[0]})
    if not rows:
        raise DatasetError(f"{src}: no RIRs under simulated_rirs/ or real_rirs_isotropic_noises/")
    out = Path(data_dir).expanduser().resolve()
    write_csv(out / "rir.csv", rows)
    atomic_write_text(out / "data.yaml", yaml.safe_dump({"name": "rir", "kind": "noise", "audio_root": str(src),
                                                         "rirs": len(rows)}))
    return out
