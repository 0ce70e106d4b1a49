"""The run folder: open a run (logger, seed, command line, dataset check, training rows), metrics.csv,
and load a finished run (its config, dataset and selected model's description).

A run folder holds ``config.yaml``, ``training.log``, ``metrics.csv``, ``model_best.*`` /
``model_last.*`` (:mod:`layersv.checkpoint`), ``scores/`` and, once evaluated, ``report.*``,
``scoring.npz`` and ``calibration.json``.  Every fitter (:mod:`.gradient`, :mod:`.stats`) opens it
through :func:`open_run`, so the setup is written once.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import read_description
from ..config import Config, apply_overrides, load_config, save_config, to_dict
from ..data.audio import AudioInfo
from ..data.dataset_folder import DatasetFolder, check_dataset, open_dataset
from ..registries import registries
from ..utils import atomic_write_text, seed_everything, setup_run_logger

METRIC_COLUMNS = ["cycle", "step", "train_loss", "train_acc", "lr", "margin", "valid_eer",
                  "valid_min_dcf_0.01", "valid_min_dcf_0.05", "best_valid_eer", "elapsed_s"]
CHECKPOINT_FILES = ("model_last.pt", "model_best.json", "model_best.pt")


def new_run_dir(out: str | None, root: str = "res") -> Path:
    """``out``, or ``res/local-YYYYMMDD-HHMMSS``."""
    return Path(out) if out else Path(root) / time.strftime("local-%Y%m%d-%H%M%S")


def open_data(cfg: Config) -> tuple[DatasetFolder, dict[str, AudioInfo]]:
    """The training dataset and its checked files (train rows, valid trials, and test unless ``skiptest``)."""
    splits = ("valid",) if cfg.train.skiptest else ("valid", "test")
    ds = open_dataset(cfg.data.data_dir)
    return ds, check_dataset(ds, splits)


def training_rows(cfg: Config, ds: DatasetFolder) -> list[tuple[str, str]]:
    """``(path, speaker)`` training rows, subsampled to ``data.max_train_utts`` (seeded) when set."""
    rows = ds.train
    if cfg.data.max_train_utts and len(rows) > cfg.data.max_train_utts:
        idx = np.random.default_rng(cfg.seed).choice(len(rows), cfg.data.max_train_utts, replace=False)
        rows = [rows[i] for i in sorted(idx)]
    return rows


@dataclass
class Run:
    """An opened run: its folder, config, dataset, checked files, training rows, logger and device."""

    run_dir: Path
    cfg: Config
    ds: DatasetFolder
    infos: dict
    train_rows: list
    log: logging.Logger
    device: str = "cpu"
    selected: dict | None = None  # step / valid figures of model_best (set by the fitter)


def open_run(cfg: Config, run_dir: Path, ds: DatasetFolder, infos: dict, command: str = "", seed_offset: int = 0,
             main: bool = True, save: bool = True, log_config: bool = True) -> Run:
    """Set up a run folder: ``scores/``, the logger (rank 0 writes training.log), the seed
    (``cfg.seed + seed_offset``: the rank), the command line, config.yaml (``save``) and the training rows."""
    if main:
        (run_dir / "scores").mkdir(parents=True, exist_ok=True)
    log = setup_run_logger(run_dir if main else None)
    seed_everything(cfg.seed + seed_offset)
    if command:
        log.info(f"USING COMMAND: {command}")
    if main and save:
        save_config(cfg, run_dir / "config.yaml")
    if log_config:  # the Stats fitter saves and logs it once its layers are resolved
        log.info("config: " + json.dumps(to_dict(cfg)))
    rows = training_rows(cfg, ds)
    log.info(f"dataset {ds.name}: {len(rows)} training utterances, {len({s for _, s in rows})} speakers")
    return Run(run_dir, cfg, ds, infos, rows, log, cfg.device)


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    """metrics.csv: one row per cycle, rewritten whole (atomically) from the training history."""
    cols = METRIC_COLUMNS + sorted({k for r in rows for k in r} - set(METRIC_COLUMNS))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(run_dir / "metrics.csv", buf.getvalue())


def resume_config(run_dir: str | Path) -> Config:
    """The saved config of a run that ``train --resume`` can continue (clear errors otherwise)."""
    run = Path(run_dir)
    if not (run / "model_last.pt").is_file():
        raise FileNotFoundError(f"cannot resume {run}: no model_last.pt (did the first cycle finish?)")
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"cannot resume {run}: no config.yaml (not a run folder)")
    return load_config(run / "config.yaml", registries())


@dataclass
class FinishedRun:
    """A trained run read back: its folder, config (with overrides), training dataset and the
    description of its selected model (``model_best.json``: step, validation figures), read once."""

    run_dir: Path
    cfg: Config
    ds: DatasetFolder
    selected: dict


def load_run(run_dir: str | Path, overrides: dict | None = None, need_train: bool = True) -> FinishedRun:
    """Read a finished run folder; a clear error before any work when it is not one (no config.yaml,
    no model, or an old pickled checkpoint: ``layersv convert``)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml)")
    selected = read_description(run_dir)
    cfg = apply_overrides(load_config(run_dir / "config.yaml", registries()), overrides or {})
    return FinishedRun(run_dir, cfg, open_dataset(cfg.data.data_dir, need_train=need_train), selected)
