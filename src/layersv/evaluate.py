"""Evaluation of a run: embeddings of the test trials' utterances → scoring stages → report.

Stages: ``cosine`` (raw cosine) and ``mean_sub`` (cosine after subtracting the mean
embedding of training utterances: LAP's "naive" evaluation).  Score normalisation and
calibration stages are added by :mod:`layersv.scoring` when asked for.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .config import Config, load_config
from .data.folder import DatasetFolder, check_dataset, open_dataset
from .embed import extract_embeddings
from .model import load_model
from .report import stage_metrics, write_report, write_scores
from .scoring import cosine_scores

_log = logging.getLogger("layersv")


def train_mean(model, ds: DatasetFolder, train_rows, infos, cfg: Config, device: str, progress: bool) -> np.ndarray:
    """Mean L2-normalised embedding of up to ``eval.mean_sub_utts`` training utterances."""
    rows = sorted(p for p, _ in train_rows)
    n = cfg.eval.mean_sub_utts
    if n and len(rows) > n:
        rows = [rows[i] for i in sorted(np.random.default_rng(cfg.seed).choice(len(rows), n, replace=False))]
    missing = [r for r in rows if r not in infos]
    if missing:
        from .data.folder import probe_files

        more, _ = probe_files(ds, missing)
        infos = {**infos, **more}
        rows = [r for r in rows if r in infos]
    emb = extract_embeddings(model, ds, rows, infos, cfg.data.eval_batch_sec, cfg.data.eval_max_sec, device,
                             cfg.workers, progress, desc="train-mean embed")
    return emb.matrix.mean(0)


def evaluate_split(run_dir: str | Path, cfg: Config, ds: DatasetFolder, infos, train_rows, eval_ds=None,
                   split: str = "test", device: str = "cpu", progress: bool = True, log=None) -> dict:
    """Score ``split`` trials of ``eval_ds`` (default: the training dataset) with the run's best model."""
    log = log or _log
    run_dir = Path(run_dir)
    eval_ds = eval_ds or ds
    model = load_model(run_dir / "model_best.pt", device)
    trials = eval_ds.trials(split)
    ev_infos = infos if eval_ds is ds else check_dataset(eval_ds, (split,))
    emb = extract_embeddings(model, eval_ds, trials.utterances, ev_infos, cfg.data.eval_batch_sec,
                             cfg.data.eval_max_sec, device, cfg.workers, progress, desc=f"{split} embed")
    stages = {"cosine": cosine_scores(emb, trials)}
    mean = train_mean(model, ds, train_rows, infos, cfg, device, progress)
    stages["mean_sub"] = cosine_scores(emb, trials, mean=mean)
    tag = f"{eval_ds.name}_{split}" if eval_ds is not ds else split
    for st, s in stages.items():
        write_scores(run_dir / "scores" / f"{tag}_{st}.csv", trials, s)
    import torch

    best = torch.load(run_dir / "model_best.pt", map_location="cpu", weights_only=False)
    report = {
        "dataset": eval_ds.name, "split": split, "trials": int(len(trials)), "targets": int(trials.labels.sum()),
        "stages": stage_metrics(stages, trials.labels),
        "model": cfg.model.model, "backbone": cfg.frontend.backbone_cfg,
        "selected_step": int(best.get("step", -1)), "valid_eer": float(best.get("valid", {}).get("eer", float("nan"))),
        "run": str(run_dir),
    }
    write_report(run_dir, report, stages, trials.labels, title=f"{cfg.model.model} on {eval_ds.name} ({split})")
    for st, m in report["stages"].items():
        log.info(f"{split} [{st}] EER {m['eer']:.2f} % | minDCF0.01 {m['min_dcf_0.01']:.4f} | "
                 f"minDCF0.05 {m['min_dcf_0.05']:.4f}")
    return report


def evaluate_run(run_dir: str | Path, eval_data: str = "", device: str = "cpu", progress: bool = True) -> dict:
    """``layersv eval RUN``: test trials of the run's dataset (or of ``eval_data``) with model_best.pt."""
    from .cli_support import registries
    from .utils import setup_run_logger

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml)")
    cfg = load_config(run_dir / "config.yaml", registries())
    log = setup_run_logger(run_dir)
    ds = open_dataset(cfg.data.data_dir)
    eval_ds = open_dataset(eval_data, need_train=False) if eval_data else None
    infos = check_dataset(ds, () if eval_ds else ("test",), include_train=False)
    return evaluate_split(run_dir, cfg, ds, infos, ds.train, eval_ds=eval_ds, device=device, progress=progress,
                          log=log)
