"""The training loop, explicit: ``fit`` → ``train_one_cycle`` → ``validate`` → (test once, at the end).

A *cycle* is ``nb_steps_eval`` optimizer steps followed by validation on the dataset's
**validation** trials; ``model_best.pt`` is the cycle with the lowest validation EER (the
seeds also looked at test scores while selecting; the test set is scored once here, on the
selected checkpoint).  ``model_last.pt`` carries optimizer, scheduler, head and RNG states,
so ``--resume RUN`` continues exactly where the last finished cycle ended.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import metrics
from .config import Config, save_config, to_dict
from .data.dataset import StreamSampler, TrainCrops, collate
from .data.folder import DatasetFolder, check_dataset, open_dataset
from .embed import extract_embeddings
from .evaluate import evaluate_split
from .heads import MarginSchedule, build_head
from .model import SpeakerEncoder, build_model, read_checkpoint, save_model
from .utils import (atomic_torch_save, atomic_write_text, count_parameters, rng_state, seed_everything,
                    set_rng_state, setup_run_logger)

METRIC_COLUMNS = ["cycle", "step", "train_loss", "train_acc", "lr", "margin", "valid_eer",
                  "valid_min_dcf_0.01", "valid_min_dcf_0.05", "best_valid_eer", "elapsed_s"]


@dataclass
class TrainState:
    step: int = 0
    cycle: int = 0
    best_eer: float = math.inf
    best_step: int = -1
    elapsed_s: float = 0.0
    history: list = None  # metrics.csv rows, kept in model_last.pt so a resume rewrites the same file

    def __post_init__(self):
        self.history = list(self.history or [])


def new_run_dir(out: str | None, root: str = "res") -> Path:
    if out:
        return Path(out)
    return Path(root) / time.strftime("local-%Y%m%d-%H%M%S")


def effective_schedule(cfg: Config) -> tuple[int, int]:
    """(total steps, steps per cycle); ``quickrun`` = 3 short cycles."""
    t = cfg.train
    if t.quickrun:
        per = max(1, min(t.nb_steps_eval, 10))
        return 3 * per, per
    return t.nb_total_step, max(1, min(t.nb_steps_eval, t.nb_total_step))


def build_optimizer(cfg: Config, model: SpeakerEncoder, head: torch.nn.Module, total_steps: int):
    """Two parameter groups: backend + head at ``lr``, trainable encoder parameters at ``backbone_lr``."""
    t = cfg.train
    groups = [{"params": [p for p in list(model.backend.parameters()) + list(head.parameters()) if p.requires_grad],
               "lr": t.lr, "name": "backend"}]
    fr = [p for p in model.frontend.parameters() if p.requires_grad]
    if fr:
        groups.append({"params": fr, "lr": t.backbone_lr, "name": "frontend"})
    opts = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    if t.optimizer not in opts:
        raise ValueError(f"unknown optimizer {t.optimizer!r}; valid: {', '.join(opts)}")
    kw = {"momentum": 0.9} if t.optimizer == "sgd" else {}
    opt = opts[t.optimizer](groups, lr=t.lr, weight_decay=t.weight_decay, **kw)
    max_lrs = [g["lr"] for g in groups]
    if t.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lrs, total_steps=total_steps,
                                                    pct_start=t.pct_start)
    elif t.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps, eta_min=0.0)
    elif t.scheduler == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    else:
        raise ValueError(f"unknown scheduler {t.scheduler!r}; valid: onecycle, cosine, constant")
    return opt, sched


def train_one_cycle(model, head, opt, sched, crops: TrainCrops, cfg: Config, state: TrainState, steps: int,
                    device: str, progress: bool, margin_fn=None) -> dict:
    """Run ``steps`` optimizer steps from ``state.step``; returns mean loss / accuracy / last lr."""
    bs = cfg.train.batch_size
    start = state.step * bs
    loader = DataLoader(crops, batch_size=bs, sampler=StreamSampler(start, start + steps * bs),
                        collate_fn=getattr(crops, "collate", collate), num_workers=cfg.workers, drop_last=False)
    model.train()
    head.train()
    tot_loss, tot_acc, n = 0.0, 0.0, 0
    bar = tqdm(loader, total=steps, desc=f"cycle {state.cycle + 1} train", disable=not progress, leave=False,
               unit="step")
    for b in bar:
        if margin_fn is not None:
            head.margin = margin_fn(state.step)
        emb = model(b.wav.to(device), b.lengths.to(device))
        labels = b.labels.to(device)
        loss, logits = head(emb, labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {state.step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.train.grad_clip)
        opt.step()
        sched.step()
        state.step += 1
        acc = (logits.argmax(-1) == labels).float().mean().item()
        tot_loss += loss.item()
        tot_acc += acc
        n += 1
        bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc:.2f}", lr=f"{opt.param_groups[0]['lr']:.2e}")
    return {"train_loss": tot_loss / max(n, 1), "train_acc": tot_acc / max(n, 1),
            "lr": opt.param_groups[0]["lr"], "margin": float(getattr(head, "margin", 0.0))}


def validate(model, ds: DatasetFolder, infos, cfg: Config, device: str, progress: bool, split: str = "valid",
             cache=None):
    """EER / minDCF of the cosine scores on ``split`` trials (from the feature cache when given)."""
    trials = ds.trials(split)
    if cache is not None:
        from .frontends.cache import cached_embeddings

        sr = model.sample_rate
        mx = int(model.frontend.frame_lengths(torch.tensor([round(cfg.data.eval_max_sec * sr)]))[0])
        emb = cached_embeddings(model.backend, cache, trials.utterances, max_frames=mx if cfg.data.eval_max_sec
                                else 0, device=device)
    else:
        emb = extract_embeddings(model, ds, trials.utterances, infos, cfg.data.eval_batch_sec, cfg.data.eval_max_sec,
                             device, cfg.workers, progress, desc=f"{split} embed")
    from .scoring import cosine_scores

    return metrics.compute_all(cosine_scores(emb, trials), trials.labels)


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    """metrics.csv: one row per cycle, rewritten whole (atomically) from the training history."""
    cols = METRIC_COLUMNS + sorted({k for r in rows for k in r} - set(METRIC_COLUMNS))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(run_dir / "metrics.csv", buf.getvalue())


def _init_from(model: SpeakerEncoder, head, path: str, log) -> None:
    """Initialise from a previous phase (run folder → its model_best.pt), and its head if shapes match."""
    p = Path(path)
    ckpt = read_checkpoint(p)
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    log.info(f"init_from {path}: missing={len(missing)} unexpected={len(unexpected)}")
    last = (p / "model_last.pt") if p.is_dir() else None
    hs = ckpt.get("head_state")
    if hs is None and last is not None and last.is_file():
        hs = torch.load(last, map_location="cpu", weights_only=False).get("train_state", {}).get("head")
    if hs is not None:
        try:
            head.load_state_dict(hs)
            log.info("init_from: head loaded")
        except RuntimeError as e:
            log.info(f"init_from: head not loaded ({str(e).splitlines()[0]})")


def fit(cfg: Config, run_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
        command: str = "") -> Path:
    """Train ``cfg`` into ``run_dir`` (created), or continue it when ``resume``; returns the run folder."""
    if cfg.model.model == "Stats":  # training-free: statistics + whitening, fitted (layersv.stats_train)
        from .stats_train import fit_stats

        return fit_stats(cfg, run_dir or new_run_dir(None), progress, command)
    run_dir = Path(run_dir) if run_dir else new_run_dir(None)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "scores").mkdir(exist_ok=True)
    log = setup_run_logger(run_dir)
    device = cfg.device
    seed_everything(cfg.seed)
    if command:
        log.info(f"USING COMMAND: {command}")
    if not resume:
        save_config(cfg, run_dir / "config.yaml")
    log.info("config: " + json.dumps(to_dict(cfg)))

    ds = open_dataset(cfg.data.data_dir)
    splits = ("valid",) if cfg.train.skiptest else ("valid", "test")
    infos = check_dataset(ds, splits)
    train_rows = ds.train
    if cfg.data.max_train_utts and len(train_rows) > cfg.data.max_train_utts:
        idx = np.random.default_rng(cfg.seed).choice(len(train_rows), cfg.data.max_train_utts, replace=False)
        train_rows = [train_rows[i] for i in sorted(idx)]
    speakers = sorted({s for _, s in train_rows})
    spk_index = {s: i for i, s in enumerate(speakers)}
    log.info(f"dataset {ds.name}: {len(train_rows)} training utterances, {len(speakers)} speakers")

    model = build_model(cfg).to(device)
    head = build_head(cfg.head.head, model.embedding_dim, len(speakers), **cfg.head.args).to(device)
    log.info(f"parameters: frontend {count_parameters(model.frontend)} "
             f"(trainable {count_parameters(model.frontend, True)}), backend {count_parameters(model.backend)}, "
             f"head {count_parameters(head)}")
    total, per_cycle = effective_schedule(cfg)
    opt, sched = build_optimizer(cfg, model, head, total)
    state = TrainState()
    if resume:
        last = torch.load(run_dir / "model_last.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(last["state_dict"])
        ts = last["train_state"]
        head.load_state_dict(ts["head"])
        opt.load_state_dict(ts["optimizer"])
        sched.load_state_dict(ts["scheduler"])
        state = TrainState(**ts["state"])
        set_rng_state(ts["rng"])
        write_metrics(run_dir, state.history)
        log.info(f"resumed at step {state.step} (cycle {state.cycle})")
    elif cfg.train.init_from:
        _init_from(model, head, cfg.train.init_from, log)

    crops = TrainCrops([(str(ds.abspath(p)), p) for p, _ in train_rows], [spk_index[s] for _, s in train_rows],
                       infos, model.sample_rate, cfg.data.train_max_sec, cfg.seed, cfg.data.fix_to_maxlen)
    cache, step_model = None, model
    if cfg.frontend.cache:  # frozen frontend: train and validate from cached hidden states
        from .frontends.cache import training_cache

        cache, crops, step_model = training_cache(cfg, model, ds, train_rows, crops.labels, progress, log)
    margin_fn = None
    if cfg.train.margin_schedule != "none" and hasattr(head, "margin"):
        t = cfg.train
        margin_fn = MarginSchedule(float(head.margin), t.margin_start, t.margin_ramp_begin, t.margin_ramp_steps,
                                   t.margin_schedule)
    t0 = time.time() - state.elapsed_s
    while state.step < total:
        steps = min(per_cycle, total - state.step)
        tr = train_one_cycle(step_model, head, opt, sched, crops, cfg, state, steps, device, progress, margin_fn)
        state.cycle += 1
        va = validate(model, ds, infos, cfg, device, progress, cache=cache)
        improved = va["eer"] < state.best_eer
        if improved:
            state.best_eer, state.best_step = va["eer"], state.step
        state.elapsed_s = time.time() - t0
        row = {"cycle": state.cycle, "step": state.step, **tr, "valid_eer": va["eer"],
               "valid_min_dcf_0.01": va["min_dcf_0.01"], "valid_min_dcf_0.05": va["min_dcf_0.05"],
               "best_valid_eer": state.best_eer, "elapsed_s": state.elapsed_s}
        msg = (f"cycle {state.cycle} step {state.step}/{total}: loss {tr['train_loss']:.4f} acc {tr['train_acc']:.3f} "
               f"| valid EER {va['eer']:.2f} % minDCF0.01 {va['min_dcf_0.01']:.4f} (best {state.best_eer:.2f} %)")
        if cfg.train.eval_test_each_cycle and not cfg.train.skiptest:
            te = validate(model, ds, infos, cfg, device, progress, split="test")
            row["test_eer"] = te["eer"]
            msg += f" | test EER {te['eer']:.2f} %"
        log.info(msg)
        tqdm.write(msg) if progress else print(msg, flush=True)
        if improved:
            save_model(model, run_dir / "model_best.pt", step=state.step, valid=va, head_state=head.state_dict())
        state.history.append(row)
        save_model(model, run_dir / "model_last.pt", step=state.step, train_state={
            "head": head.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "state": {**vars(state), "history": list(state.history)}, "rng": rng_state(),
        })
        write_metrics(run_dir, state.history)
    log.info(f"training done: best valid EER {state.best_eer:.2f} % at step {state.best_step}")
    if not cfg.train.skiptest:
        evaluate_split(run_dir, cfg, ds, infos, train_rows, device=device, progress=progress, log=log)
    return run_dir
