"""Which utterances ``layersv cache --splits`` caches: training rows and any trial list of the folder.

``train`` → the rows of ``train.csv``; ``NAME`` → the utterances of ``NAME_trials.csv`` (or ``.txt``):
``valid``, ``test``, ``vox1_e``, ``vox1_h`` …; ``all`` → ``train`` (when the folder has one) and every
trial list.  Caching the test trials of a frozen encoder once lets ``layersv eval`` of every backend
trained on it embed from the cache instead of encoding the test audio again
(``eval.feature_cache``, on by default).
"""

from __future__ import annotations

import re


def trial_lists(ds) -> list[str]:
    """Names of the folder's trial lists (``<name>_trials.csv|txt``), sorted."""
    return sorted({re.sub(r"_trials$", "", f.stem) for f in ds.root.glob("*_trials.*") if f.suffix in (".csv", ".txt")})


def split_keys(ds, splits: tuple[str, ...]) -> tuple[list[str], bool]:
    """(utterance keys of ``splits``, whether the training rows are among them); ``ds`` opened without
    train rows is fine: ``train.csv`` is read here when asked for."""
    names: list[str] = []
    for s in splits:
        names += (["train"] if (ds.root / "train.csv").is_file() else []) + trial_lists(ds) if s == "all" else [s]
    keys: list[str] = []
    for s in dict.fromkeys(names):
        if s == "train":
            keys += [p for p, _ in (ds.train or ds.read_list("train.csv"))]
        elif ds.has_trials(s):
            keys += list(ds.trials(s).utterances)
        else:
            raise ValueError(f"unknown split {s!r}; valid: train, all, or a trial list of {ds.root} "
                             f"({', '.join(trial_lists(ds)) or 'none'})")
    return keys, "train" in names
