"""Users' own data: ``root/<speaker>/**/*.{wav,flac,ogg,opus,mp3}`` → dataset folder.

Speakers are split speaker-disjoint (seeded shuffle of the sorted speaker names, default 80/10/10).
Only speakers with at least ``min_utts`` recordings can hold valid/test trials (a target trial
needs two recordings); speakers with fewer go to training, where a single recording is still a
class. Valid/test trials are generated balanced (positives evenly over speakers, negatives evenly
over speaker pairs, and over same/different-gender pairs when a ``metadata.csv`` gives genders),
without duplicate or self pairs.

When too few speakers have two recordings (e.g. one utterance per speaker), valid/test speakers'
single recordings are cut into two halves (written under ``<data_dir>/halves/``): such target
trials compare two stretches of ONE recording, which says nothing about a new session; the
dataset's ``data.yaml`` records it (``trials_from_halves: true``) and a warning is printed.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import soundfile as sf

from ..audio import load_audio
from ..dataset_folder import DatasetError
from ..trials import balanced_trials
from .common import list_audio, require_dir, split_speakers, write_dataset

GENDER_COLUMNS = ("gender", "sex")
FORMAT_DIRS = {"wav", "flac", "ogg", "opus", "mp3", "audio", "wavs"}  # a corpus' audio folder, not its name


def read_speaker_metadata(path: Path) -> dict[str, dict]:
    """``metadata.csv`` (columns ``speaker`` and any of gender/sex/age_group...) → speaker → attrs.

    Utterance-level files (one row per file, as speechocean762's) are reduced to the first value
    per speaker; a column whose value varies within a speaker is dropped.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows or "speaker" not in {k.strip().lower() for k in rows[0]}:
        raise DatasetError(f"{path}: a speaker metadata file needs a 'speaker' column")
    out: dict[str, dict] = {}
    varying: set[str] = set()
    for r in rows:
        r = {k.strip().lower(): (v or "").strip() for k, v in r.items() if k}
        attrs = out.setdefault(r["speaker"], {})
        for k, v in r.items():
            if k == "speaker":
                continue
            if k in attrs and attrs[k] != v:
                varying.add(k)
            attrs.setdefault(k, v)
    return {s: {k: v for k, v in a.items() if k not in varying} for s, a in out.items()}


def _find_metadata(src: Path, metadata: str | os.PathLike | None) -> Path | None:
    if metadata:
        p = Path(metadata).expanduser()
        if not p.is_file():
            raise DatasetError(f"--metadata: file not found: {p}")
        return p
    for p in (src / "metadata.csv", src.parent / "metadata.csv"):
        if p.is_file():
            return p
    return None


def _halves(src: Path, rels: list[str], out_dir: Path, sample_rate: int = 16000) -> list[tuple[str, str]]:
    """Cut each ``<speaker>/file`` into two halves (FLAC at ``sample_rate``) → (abs path, speaker)."""
    rows = []
    for rel in rels:
        spk = rel.split("/", 1)[0]
        wav = load_audio(src / rel, sample_rate)
        half = wav.shape[0] // 2
        for i, part in enumerate((wav[:half], wav[half:2 * half])):
            dst = out_dir / spk / f"{Path(rel).stem}_half{i}.flac"
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + ".tmp.flac")
            sf.write(str(tmp), part, sample_rate)
            os.replace(tmp, dst)
            rows.append((str(dst), spk))
    return rows


def prepare_folder(src: str | os.PathLike, data_dir: str | os.PathLike,
                   fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), n_trials: int = 20000,
                   seed: int = 42, min_utts: int = 2, metadata: str | os.PathLike | None = None,
                   verbose: bool = True) -> Path:
    """Write a dataset folder for ``src`` and print how many speakers went where.

    Args:
        fractions: train/valid/test shares of the speakers that have ``min_utts`` recordings;
            speakers with fewer recordings all go to training.
        n_trials: trials per eval split (half target; capped by the distinct pairs available).
        metadata: a CSV with a ``speaker`` column (default: ``metadata.csv`` in ``src`` or its
            parent); a gender column balances non-target trials over same/different gender.
    """
    src = require_dir(src, "audio folder")
    data_dir = Path(data_dir).expanduser().resolve()
    by_spk: dict[str, list[str]] = {}
    for p in list_audio(src):
        rel = p.relative_to(src)
        if len(rel.parts) < 2:
            continue  # files at the root have no speaker folder
        by_spk.setdefault(rel.parts[0], []).append(rel.as_posix())
    if not by_spk:
        raise DatasetError(f"{src}: no <speaker>/**/*.(wav|flac|ogg|opus|mp3) files")
    multi = {s: f for s, f in by_spk.items() if len(f) >= min_utts}
    single = sorted(set(by_spk) - set(multi))
    halves = len(multi) < 5 and fractions[1] + fractions[2] > 0
    pool = by_spk if halves else multi
    tr, va, te = split_speakers(pool, fractions, seed)
    if not halves:
        tr = sorted(tr + single)

    meta_path = _find_metadata(src, metadata)
    spk_meta = read_speaker_metadata(meta_path) if meta_path else {}
    gcol = next((c for c in GENDER_COLUMNS if spk_meta and all(c in spk_meta.get(s, {}) for s in by_spk)), None)

    def trials(spk: list[str], seed_: int) -> list[dict]:
        if halves:
            rows = _halves(src, [f for s in spk for f in by_spk[s][:1]], data_dir / "halves")
        else:
            rows = [(f, s) for s in spk for f in by_spk[s]]
        keys = (gcol,) if gcol and len({spk_meta[s][gcol] for s in spk}) > 1 else ()
        return balanced_trials(rows, n_trials // 2, n_trials // 2, seed_, speaker_meta=spk_meta, match_keys=keys)

    def listing(spk: list[str]) -> list[dict]:
        return [{"path": f, "speaker": s, **({gcol: spk_meta[s][gcol]} if gcol else {})}
                for s in spk for f in by_spk[s]]

    valid, test = trials(va, seed), trials(te, seed + 1)
    counts = {"train_speakers": len(tr), "train_single_recording_speakers": len(single) if not halves else
              sum(len(by_spk[s]) < min_utts for s in tr), "valid_speakers": len(va), "test_speakers": len(te)}
    name = src.parent.name if src.name.lower() in FORMAT_DIRS else src.name
    out = write_dataset(data_dir, name, src, 16000, listing(tr), valid, test,
                        lists={"valid.csv": listing(va), "test.csv": listing(te), "cohort.csv": listing(tr)},
                        meta={"corpus": "folder", **counts, "trials_from_halves": halves,
                              "speaker_metadata": str(meta_path) if meta_path else None,
                              "trials_balanced_on": gcol, "split_seed": seed})
    if halves:
        warnings.warn(f"{src}: only {len(multi)} speaker(s) have {min_utts}+ recordings; valid/test target "
                      "trials compare two halves of ONE recording (same session): they cannot show whether a "
                      "trained model learnt speakers or recordings", stacklevel=2)
    if verbose:
        print(f"speakers: {len(tr)} train ({counts['train_single_recording_speakers']} with a single recording), "
              f"{len(va)} valid, {len(te)} test; trials: {len(valid)} valid, {len(test)} test"
              + (f", non-targets balanced on {gcol}" if gcol else ""))
    return out
