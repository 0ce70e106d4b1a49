"""Users' own data: ``root/<speaker>/**/*.{wav,flac}`` → dataset folder.

Speakers are split speaker-disjoint (seeded shuffle of the sorted speaker names, default 80/10/10),
valid/test trials are generated balanced (positives evenly over speakers, negatives evenly over
speaker pairs), without duplicate or self pairs.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..folder import DatasetError
from ..trials import balanced_trials
from .common import list_audio, require_dir, split_speakers, write_dataset


def prepare_folder(src: str | os.PathLike, data_dir: str | os.PathLike,
                   fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), n_trials: int = 20000,
                   seed: int = 42, min_utts: int = 2) -> Path:
    """Write a dataset folder for ``src``; speakers with fewer than ``min_utts`` files are skipped."""
    src = require_dir(src, "audio folder")
    by_spk: dict[str, list[str]] = {}
    for p in list_audio(src):
        rel = p.relative_to(src)
        if len(rel.parts) < 2:
            continue  # files at the root have no speaker folder
        by_spk.setdefault(rel.parts[0], []).append(rel.as_posix())
    if not by_spk:
        raise DatasetError(f"{src}: no <speaker>/**/*.wav|flac|ogg|opus|mp3 files")
    kept = {s: f for s, f in by_spk.items() if len(f) >= min_utts}
    tr, va, te = split_speakers(kept, fractions, seed)

    def rows(spk: list[str]) -> list[tuple[str, str]]:
        return [(f, s) for s in spk for f in kept[s]]

    listing = {k: [{"path": f, "speaker": s} for f, s in rows(v)] for k, v in (("train", tr), ("valid", va), ("test", te))}
    valid = balanced_trials(rows(va), n_trials // 2, n_trials // 2, seed)
    test = balanced_trials(rows(te), n_trials // 2, n_trials // 2, seed + 1)
    return write_dataset(data_dir, src.name, src, 16000, listing["train"], valid, test,
                         lists={"valid.csv": listing["valid"], "test.csv": listing["test"]},
                         meta={"corpus": "folder", "skipped_speakers": sorted(set(by_spk) - set(kept)),
                               "split_seed": seed})
