"""LibriSpeech (OpenSLR 12) → dataset folder, as SV-bench prepares it (seeds-spec §1.8).

All seven subsets ``<subset>/<speaker>/<chapter>/<spk>-<chap>-<utt>.flac`` are listed; FLAC is read
directly (16 kHz, no conversion).  ``SPEAKERS.TXT`` gives SEX and SUBSET.  Speakers: train =
train-clean-100/360 + train-other-500, valid = dev-clean + dev-other, test = test-clean + test-other
(the seed's speaker-{train,valid,test}.csv are exactly these SUBSET filters), restricted to the
subsets present.  Trials: negatives balanced over GENDER_MATCH, positives evenly over speakers
(16,000 + 18,000 as in the seed), or the shipped ``trials-{dev,test}.csv`` mapped onto the FLAC paths.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..dataset_folder import DatasetError
from ..trials import balanced_trials, map_trial_paths
from .common import require_dir, write_dataset

SUBSETS = {"train": ("train-clean-100", "train-clean-360", "train-other-500"),
           "valid": ("dev-clean", "dev-other"), "test": ("test-clean", "test-other")}


def read_speakers_txt(path: Path) -> dict[str, dict]:
    """``SPEAKERS.TXT`` -> {"84": {"GENDER": "F", "SUBSET": "dev-clean", "MINUTES": 8.02, "NAME": ...}}."""
    if not path.is_file():
        raise DatasetError(f"LibriSpeech speaker metadata not found: {path}")
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(";") or line.count("|") < 4:
            continue
        f = [x.strip() for x in line.split("|", 4)]
        try:
            minutes = float(f[3])
        except ValueError:
            raise DatasetError(f"{path}: bad MINUTES in {line!r}") from None
        out[f[0]] = {"GENDER": f[1].upper(), "SUBSET": f[2], "MINUTES": minutes, "NAME": f[4]}
    if not out:
        raise DatasetError(f"{path}: no speaker rows ('ID | SEX | SUBSET | MINUTES | NAME')")
    return out


def list_librispeech(src: Path) -> dict[str, list[tuple[str, str]]]:
    """subset -> [(relative path, speaker)] for the subsets present (sorted)."""
    out = {}
    for subset in sum(SUBSETS.values(), ()):
        d = src / subset
        if d.is_dir():
            out[subset] = [(p.relative_to(src).as_posix(), p.parent.parent.name) for p in sorted(d.glob("*/*/*.flac"))]
    if not out:
        raise DatasetError(f"{src}: none of the LibriSpeech subsets {sum(SUBSETS.values(), ())} found")
    return out


def _map_seed_trials(path: Path, present: set[str]) -> list[dict]:
    """Seed paths ``dev-clean/84/84-121123-0000.wav`` -> ``dev-clean/84/121123/84-121123-0000.flac``."""

    def resolve(sample: str) -> str | None:
        p = Path(sample)
        chap = p.stem.split("-")[1] if p.stem.count("-") == 2 else ""
        rel = (p.parent / chap / f"{p.stem}.flac").as_posix()
        return rel if rel in present else None

    return map_trial_paths(path, resolve, "LibriSpeech")


def prepare_librispeech(src: str | os.PathLike, data_dir: str | os.PathLike,
                        seed_dir: str | os.PathLike | None = None, n_target: int = 18000,
                        n_nontarget: int = 16000, seed: int = 42) -> Path:
    """Write a LibriSpeech dataset folder; ``seed_dir`` = the seed's ``data/LibriSpeech/preprocess``."""
    src = require_dir(src, "LibriSpeech folder")
    spk_txt = src / "SPEAKERS.TXT"
    if not spk_txt.is_file() and src.parent.joinpath("SPEAKERS.TXT").is_file():
        spk_txt = src.parent / "SPEAKERS.TXT"
    meta = read_speakers_txt(spk_txt)
    by_subset = list_librispeech(src)
    unknown = sorted({s for rows in by_subset.values() for _, s in rows} - set(meta))
    if unknown:
        raise DatasetError(f"{spk_txt} has no row for speaker(s) {unknown[:5]}")
    split_rows = {k: [r for sub in subs for r in by_subset.get(sub, [])] for k, subs in SUBSETS.items()}
    for k in ("train", "valid", "test"):
        if not split_rows[k]:
            raise DatasetError(f"{src}: no {k} subset present (need one of {SUBSETS[k]})")
    if seed_dir is not None:
        present = {p for rows in by_subset.values() for p, _ in rows}
        sd = Path(seed_dir) / "trials"
        valid = _map_seed_trials(sd / "trials-dev.csv", present)
        test = _map_seed_trials(sd / "trials-test.csv", present)
    else:
        valid = balanced_trials(split_rows["valid"], n_target, n_nontarget, seed, meta, ("GENDER",))
        test = balanced_trials(split_rows["test"], n_target, n_nontarget, seed + 1, meta, ("GENDER",))

    def listing(k: str) -> list[dict]:
        return [{"path": p, "speaker": s, "gender": meta[s]["GENDER"], "subset": p.split("/", 1)[0]}
                for p, s in split_rows[k]]

    spk_rows = [{"speaker": s, **{k.lower(): v for k, v in m.items()}} for s, m in sorted(meta.items())
                if any(m["SUBSET"] == sub for sub in by_subset)]
    return write_dataset(data_dir, "librispeech", src, 16000, listing("train"), valid, test,
                         lists={"valid.csv": listing("valid"), "test.csv": listing("test"), "speakers.csv": spk_rows},
                         meta={"corpus": "LibriSpeech", "subsets": sorted(by_subset),
                               "trials": "seed lists" if seed_dir else f"balanced over GENDER_MATCH (seed {seed})"})
