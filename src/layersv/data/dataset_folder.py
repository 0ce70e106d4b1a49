"""A prepared dataset is a folder of plain files (see docs: design.md, "Data").

```
<data_dir>/data.yaml          name, audio_root (absolute or relative to data_dir), sample_rate
<data_dir>/train.csv          path,speaker[,duration_s,...]  (path relative to the audio root)
<data_dir>/valid_trials.csv   LABEL,SAMPLE1,SAMPLE2[,meta]   (LABEL 1 = same speaker)
<data_dir>/test_trials.csv    same (VoxCeleb "1 a.wav b.wav" .txt lists are read too)
<data_dir>/cohort.csv         optional: path,speaker
```
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from .audio import AudioError, AudioInfo, audio_info, content_problem


class DatasetError(ValueError):
    """The dataset folder is incomplete or lists unusable files."""


@dataclass
class Trials:
    """A trial list: ``labels (N,)`` int 0/1 and the two sides' paths (relative to the audio root)."""

    labels: np.ndarray
    enroll: list[str]
    test: list[str]
    source: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def utterances(self) -> list[str]:
        return sorted(set(self.enroll) | set(self.test))


def read_trials(path: str | os.PathLike) -> Trials:
    """Read a seed-format CSV (``LABEL,SAMPLE1,SAMPLE2,...``) or a VoxCeleb list (``1 a.wav b.wav``)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"trial list not found: {p}")
    labels, a, b = [], [], []
    text = p.read_text(encoding="utf-8-sig").splitlines()  # utf-8-sig: a byte-order mark is not data
    if text and text[0].replace(" ", "").upper().startswith("LABEL,"):
        rows = csv.DictReader(text)
        cols = {c.upper(): c for c in rows.fieldnames or []}
        for k in ("LABEL", "SAMPLE1", "SAMPLE2"):
            if k not in cols:
                raise DatasetError(f"{p}: missing column {k}")
        for i, r in enumerate(rows, start=2):
            try:
                labels.append(int(float(r[cols["LABEL"]])))
            except (TypeError, ValueError):
                raise DatasetError(f"{p}:{i}: bad LABEL {r[cols['LABEL']]!r}") from None
            a.append(r[cols["SAMPLE1"]])
            b.append(r[cols["SAMPLE2"]])
    else:
        for i, line in enumerate(text, start=1):
            parts = line.replace(",", " ").split()
            if not parts:
                continue
            if len(parts) != 3:
                raise DatasetError(f"{p}:{i}: expected 'label path1 path2', got {line!r}")
            try:
                labels.append(int(parts[0]))
            except ValueError:
                raise DatasetError(f"{p}:{i}: bad label {parts[0]!r}") from None
            a.append(parts[1])
            b.append(parts[2])
    lab = np.asarray(labels, dtype=np.int64)
    if lab.size and not np.isin(lab, (0, 1)).all():
        raise DatasetError(f"{p}: labels must be 0 or 1")
    return Trials(lab, a, b, str(p))


@dataclass
class DatasetFolder:
    """A parsed dataset folder.  ``train`` rows are (path, speaker) relative to ``audio_root``."""

    root: Path
    name: str
    audio_root: Path
    sample_rate: int
    train: list[tuple[str, str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def abspath(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.audio_root / p

    @property
    def speakers(self) -> list[str]:
        return sorted({s for _, s in self.train})

    def trials(self, split: str) -> Trials:
        for name in (f"{split}_trials.csv", f"{split}_trials.txt"):
            if (self.root / name).is_file():
                return read_trials(self.root / name)
        raise DatasetError(f"{self.root}: no {split}_trials.csv")

    def has_trials(self, split: str) -> bool:
        return any((self.root / f"{split}_trials.{x}").is_file() for x in ("csv", "txt"))

    def read_list(self, name: str) -> list[tuple[str, str]]:
        p = self.root / name
        if not p.is_file():
            raise DatasetError(f"{p}: not found")
        with open(p, newline="", encoding="utf-8-sig") as f:  # utf-8-sig: a byte-order mark is not data
            reader = csv.DictReader(f)
            cols = [c.strip() for c in reader.fieldnames or []]
            if not {"path", "speaker"} <= set(cols):
                raise DatasetError(f"{p}: needs the columns path,speaker (found: {','.join(cols) or 'nothing'})")
            reader.fieldnames = cols
            rows = list(reader)
        bad = [f"{p}:{i}: empty path or speaker" for i, r in enumerate(rows, start=2)
               if not (r.get("path") or "").strip() or not (r.get("speaker") or "").strip()]
        if bad:
            raise DatasetError(f"{p}: {len(bad)} incomplete row(s):\n  " + "\n  ".join(bad[:20]))
        return [(r["path"], r["speaker"]) for r in rows]


def open_dataset(data_dir: str | os.PathLike, need_train: bool = True) -> DatasetFolder:
    """Parse ``data_dir``; raises :class:`DatasetError` with a precise message when incomplete."""
    root = Path(data_dir).expanduser().resolve()
    meta_p = root / "data.yaml"
    if not meta_p.is_file():
        raise DatasetError(f"{root} is not a dataset folder (no data.yaml); see `layersv prepare --help`")
    try:
        meta = yaml.safe_load(meta_p.read_text()) or {}
    except yaml.YAMLError as e:
        raise DatasetError(f"{meta_p}: invalid YAML: {e}") from None
    audio_root = Path(str(meta.get("audio_root", ".")))
    audio_root = audio_root if audio_root.is_absolute() else root / audio_root
    ds = DatasetFolder(root, str(meta.get("name", root.name)), audio_root, int(meta.get("sample_rate", 16000)),
                       meta=meta)
    if need_train:
        ds.train = ds.read_list("train.csv")
        if not ds.train:
            raise DatasetError(f"{root}/train.csv lists no utterances")
    return ds


def probe_files(ds: DatasetFolder, rel_paths: list[str], workers: int = 8, min_duration_sec: float = 0.0,
                content: bool = False) -> tuple[dict[str, AudioInfo], list[str]]:
    """Read the header of every file (and with ``content`` check the samples: NaN, digital silence,
    see :func:`~layersv.data.audio.content_problem`); returns (infos, problems), one line per bad file."""
    uniq = sorted(set(rel_paths))

    def one(rel: str):
        try:
            info = audio_info(ds.abspath(rel))
        except AudioError as e:
            return rel, None, str(e)
        if info.duration < min_duration_sec:
            return rel, None, f"{ds.abspath(rel)}: too short ({info.duration:.3f} s < {min_duration_sec} s)"
        err = content_problem(ds.abspath(rel)) if content else None
        return rel, (None if err else info), err

    infos, problems = {}, []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        for rel, info, err in ex.map(one, uniq):
            if err:
                problems.append(err)
            else:
                infos[rel] = info
    return infos, problems


def check_dataset(ds: DatasetFolder, splits: tuple[str, ...] = ("valid", "test"),
                  min_duration_sec: float = 0.1, max_listed: int = 20,
                  include_train: bool = True) -> dict[str, AudioInfo]:
    """Validate everything a run will read *before* it starts; one error lists all offending rows.

    Headers of every listed file are read, and their samples checked (NaN, digital silence);
    identical validation and test trial lists are an error (selection would see the test set).
    """
    problems: list[str] = []
    paths = [p for p, _ in ds.train] if include_train else []
    if "valid" in splits and "test" in splits and ds.has_trials("valid") and ds.has_trials("test"):
        shared = set(ds.trials("valid").utterances) & set(ds.trials("test").utterances)
        if shared:
            problems.append(f"{ds.root}: valid and test trials share {len(shared)} utterance(s) (e.g. "
                            f"{sorted(shared)[0]}): the best model would be selected on the test set; "
                            "validate on speakers held out from the test trials")
    lists = {}
    for split in splits:
        if not ds.has_trials(split):
            problems.append(f"{ds.root}: missing {split}_trials.csv")
            continue
        t = ds.trials(split)
        if len(t) == 0:
            problems.append(f"{t.source}: empty trial list")
            continue
        if t.labels.min() == t.labels.max():
            problems.append(f"{t.source}: needs both target (1) and non-target (0) trials")
        paths += t.utterances
        lists[split] = (t.source, {(int(la), *sorted((e, s))) for la, e, s in zip(t.labels, t.enroll, t.test)})
    if "valid" in lists and "test" in lists and lists["valid"][1] == lists["test"][1]:
        problems.append(f"{lists['valid'][0]} and {lists['test'][0]} hold the same trials: selecting the model on "
                        "validation would select it on the test set; give each its own speakers")
    infos, bad = probe_files(ds, paths, min_duration_sec=min_duration_sec, content=True)
    problems += bad
    if problems:
        shown = "\n  ".join(problems[:max_listed])
        more = f"\n  ... and {len(problems) - max_listed} more" if len(problems) > max_listed else ""
        raise DatasetError(f"dataset {ds.root} has {len(problems)} problem(s):\n  {shown}{more}")
    return infos


def usability_notes(infos: dict[str, AudioInfo], sample_rate: int, crop_sec: float = 0.0,
                    max_examples: int = 3) -> list[str]:
    """Warnings for files that are used after a fix: resampled, mixed down to mono, or padded.

    ``crop_sec``: the training crop (files shorter than it are wrap-padded); 0 skips that note.
    """
    def note(keys: list[str], what: str) -> str:
        eg = ", ".join(keys[:max_examples]) + (", ..." if len(keys) > max_examples else "")
        return f"{len(keys)} file(s) {what} (e.g. {eg})"

    notes = []
    rates = sorted({i.sample_rate for i in infos.values()} - {sample_rate})
    for r in rates:
        notes.append(note(sorted(k for k, i in infos.items() if i.sample_rate == r),
                          f"at {r} Hz, not {sample_rate} Hz: resampled when read"))
    multi = sorted(k for k, i in infos.items() if i.channels > 1)
    if multi:
        notes.append(note(multi, "with several channels: mixed down to mono (channel average)"))
    short = sorted(k for k, i in infos.items() if crop_sec and i.duration < crop_sec)
    if short:
        notes.append(note(short, f"shorter than the {crop_sec:g} s training crop: padded by repetition"))
    return notes
