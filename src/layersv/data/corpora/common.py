"""Shared pieces of the corpus preparers: listings, dataset-folder writing, splits, downloads.

Every preparer is a pure function ``prepare_<corpus>(src, data_dir, ...) -> Path`` that reads a
corpus tree and writes a dataset folder (design.md, "Data"): ``data.yaml``, ``train.csv``,
``valid_trials.csv``, ``test_trials.csv`` and optional ``valid.csv`` / ``test.csv`` / ``cohort.csv``.
Listings are sorted and every random choice is seeded, so the same corpus gives the same files.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import yaml

from ...utils import atomic_write_text
from ..dataset_folder import DatasetError
from ..trials import write_trials

# every container soundfile (libsndfile >= 1.1) decodes: WAV, FLAC, Ogg Vorbis / Opus, MP3
AUDIO_EXTS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3")


def require_dir(p: str | os.PathLike, what: str) -> Path:
    p = Path(p).expanduser()
    if not p.is_dir():
        raise DatasetError(f"{what} not found: {p}")
    return p.resolve()


def list_audio(root: Path, exts: tuple[str, ...] = AUDIO_EXTS) -> list[Path]:
    """All files under ``root`` with one of ``exts`` (case-insensitive), sorted."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in exts and p.is_file())


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    cols = columns or (list(rows[0]) if rows else ["path", "speaker"])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def write_dataset(data_dir: str | os.PathLike, name: str, audio_root: str | os.PathLike, sample_rate: int,
                  train: list[dict], valid_trials: list[dict], test_trials: list[dict],
                  lists: dict[str, list[dict]] | None = None, extra_trials: dict[str, list[dict]] | None = None,
                  meta: dict | None = None) -> Path:
    """Write a dataset folder.  ``train``/``lists`` rows have at least ``path`` and ``speaker``.

    Refuses valid and test trials that share an utterance: a model selected on them would be selected
    on the test set."""
    out = Path(data_dir).expanduser().resolve()
    if not train:
        raise DatasetError(f"{name}: no training utterances found")
    shared = trial_utterances(valid_trials) & trial_utterances(test_trials)
    if shared:
        raise DatasetError(f"{name}: the valid and test trials share {len(shared)} utterance(s) (e.g. "
                           f"{sorted(shared)[0]}): validation must use speakers held out from the test trials")
    out.mkdir(parents=True, exist_ok=True)
    info = {"name": name, "audio_root": str(audio_root), "sample_rate": int(sample_rate),
            "train_utterances": len(train), "train_speakers": len({r["speaker"] for r in train}), **(meta or {})}
    write_csv(out / "train.csv", train)
    for fname, rows in (lists or {}).items():
        write_csv(out / fname, rows)
    write_trials(out / "valid_trials.csv", valid_trials)
    write_trials(out / "test_trials.csv", test_trials)
    for split, rows in (extra_trials or {}).items():
        write_trials(out / f"{split}_trials.csv", rows)
    atomic_write_text(out / "data.yaml", yaml.safe_dump(info, sort_keys=False))
    return out


def trial_utterances(rows: list[dict]) -> set[str]:
    """Every SAMPLE1/SAMPLE2 path of trial rows."""
    return {r[k] for r in rows for k in ("SAMPLE1", "SAMPLE2")}


def split_speakers(speakers: Iterable[str], fractions: tuple[float, float, float], seed: int) -> tuple[list, list, list]:
    """Speaker-disjoint train/valid/test (seeded shuffle of the sorted speakers; ≥ 2 per eval split)."""
    spk = sorted(set(speakers))
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be ≥ 0 and sum to 1, got {fractions}")
    n = len(spk)
    n_va = max(2, int(round(fractions[1] * n))) if fractions[1] > 0 else 0
    n_te = max(2, int(round(fractions[2] * n))) if fractions[2] > 0 else 0
    if n - n_va - n_te < 1:
        raise DatasetError(f"{n} speakers are too few for a train/valid/test split (need ≥ {n_va + n_te + 1})")
    order = [spk[i] for i in np.random.default_rng(seed).permutation(n)]
    te, va, tr = order[:n_te], order[n_te:n_te + n_va], order[n_te + n_va:]
    return sorted(tr), sorted(va), sorted(te)


def run_download(fn: Callable, target: Path, corpus: str, **kwargs) -> Path:
    """Call a lhotse download helper; turn network failures into a clear error."""
    try:
        return Path(fn(target, **kwargs))
    except ImportError as e:
        raise DatasetError(f"downloading {corpus} needs lhotse (pip install 'layersv[corpora]'): {e}") from None
    except Exception as e:  # urllib / requests / socket errors
        raise DatasetError(f"downloading {corpus} into {target} failed ({type(e).__name__}: {e}); "
                           "check the network, or download it by hand and run `layersv prepare` on the "
                           "extracted folder") from None
