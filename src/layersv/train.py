"""The training loop, explicit: ``fit`` → ``train_one_cycle`` → ``validate`` → (test once, at the end).

A *cycle* is ``nb_steps_eval`` optimizer steps followed by validation on the dataset's
**validation** trials; ``model_best.{json,safetensors}`` is the cycle with the lowest validation EER (the
seeds also looked at test scores while selecting; here the test set is scored once, on the
selected checkpoint, unless ``eval_test_each_cycle`` asks for a per-cycle look that is logged only).
``model_last.{json,safetensors}`` is the encoder of the last cycle and ``model_last.pt`` carries
optimizer, scheduler, head, EMA and RNG states (read back with ``weights_only=True``; see
:mod:`layersv.checkpoint`), so ``--resume RUN`` continues exactly where the last finished cycle
ended and reaches the same final metrics.

Phases (LAP's frozen → joint → large-margin fine-tuning) are configs, not code paths: they
differ in ``frz_pretrain``, ``init_from``, learning rates, margin and crop length.
Under ``torchrun`` every rank trains on its share of each global batch (DDP); see
:mod:`layersv.distributed`.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from . import distributed as dist
from . import metrics
from .config import Config, save_config, to_dict
from .data.augment import build_augmenter
from .data.dataset import TrainCrops, collate
from .data.folder import DatasetFolder, check_dataset, open_dataset, usability_notes
from .embed import extract_embeddings
from .frontends.hidden_mask import HiddenTimeMask
from .heads import MarginSchedule, build_head
from .loggers import build_logger
from .checkpoint import FORMAT as CHECKPOINT_FORMAT
from .checkpoint import jsonable, load_resume_state, save_resume_state
from .model import SpeakerEncoder, build_model, read_checkpoint, save_model
from .optim import build_optimizer, build_scheduler, param_groups
from .utils import (atomic_write_text, count_parameters, rng_state, seed_everything, set_rng_state,
                    setup_run_logger)

METRIC_COLUMNS = ["cycle", "step", "train_loss", "train_acc", "lr", "margin", "valid_eer",
                  "valid_min_dcf_0.01", "valid_min_dcf_0.05", "best_valid_eer", "elapsed_s"]


@dataclass
class TrainState:
    step: int = 0
    cycle: int = 0
    best_eer: float = math.inf
    best_step: int = -1
    elapsed_s: float = 0.0
    history: list = field(default_factory=list)  # metrics.csv rows, kept in model_last.pt


class TrainStep(nn.Module):
    """Model + head in one module so DDP sees every trainable parameter: returns (loss, logits)."""

    def __init__(self, model: SpeakerEncoder, head: nn.Module):
        super().__init__()
        self.model, self.head = model, head

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor):
        return self.head(self.model(wav, lengths), labels)


def with_time_masks(model: SpeakerEncoder, cfg: Config) -> SpeakerEncoder:
    """The training step's model with ``data.hidden_time_masks`` on its frontend's output (shares every
    module with ``model``; the saved model never masks)."""
    d = cfg.data
    if d.hidden_time_masks <= 0:
        return model
    return SpeakerEncoder(HiddenTimeMask(model.frontend, d.hidden_time_masks, d.hidden_time_mask), model.backend,
                          model.frontend_name, model.backend_name, model.backend_args)


class EMA:
    """Exponential moving average of a model's floating-point state (weights and BN statistics)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.source = decay, model
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self) -> None:
        for e, v in zip(self.model.state_dict().values(), self.source.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                e.copy_(v)


class StepBatches(Sampler):
    """Micro-batches of the deterministic training stream for this rank.

    Global step ``s`` covers stream items ``s·B … (s+1)·B − 1``; with ``W`` ranks and ``A``
    accumulation steps, rank ``r`` reads micro-batch ``j`` = items ``s·B + (j·W + r)·b + [0, b)``,
    ``b = B / (W·A)`` — so the union over ranks and micro-batches is the single-process batch.
    """

    def __init__(self, start_step: int, steps: int, batch_size: int, world: int, rank: int, accum: int):
        self.start, self.steps, self.B, self.W, self.r, self.A = start_step, steps, batch_size, world, rank, accum
        self.b = batch_size // (world * accum)

    def __iter__(self):
        for s in range(self.start, self.start + self.steps):
            for j in range(self.A):
                first = s * self.B + (j * self.W + self.r) * self.b
                yield list(range(first, first + self.b))

    def __len__(self) -> int:
        return self.steps * self.A


def new_run_dir(out: str | None, root: str = "res") -> Path:
    return Path(out) if out else Path(root) / time.strftime("local-%Y%m%d-%H%M%S")


def effective_schedule(cfg: Config) -> tuple[int, int]:
    """(total steps, steps per cycle); ``quickrun`` = 3 short cycles."""
    t = cfg.train
    if t.quickrun:
        per = max(1, min(t.nb_steps_eval, 10))
        return 3 * per, per
    return t.nb_total_step, max(1, min(t.nb_steps_eval, t.nb_total_step))


def _autocast(cfg: Config, device: str):
    if cfg.train.amp == "none" or not device.startswith("cuda"):
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if cfg.train.amp == "bf16" else torch.float16)


def train_one_cycle(step_mod: nn.Module, opt, sched, scaler, loader, cfg: Config, state: TrainState, steps: int,
                    device: str, bar, margin_fn=None, ema: EMA | None = None, on_step=None) -> tuple[dict, nn.Module]:
    """``steps`` optimizer steps (each ``accum_steps`` micro-batches).

    Returns (mean loss / accuracy / lr / margin, the step module — re-wrapped if ``on_step`` changed it).
    """
    inner = getattr(step_mod, "module", step_mod)
    inner.train()
    accum = cfg.train.accum_steps
    params = [p for g in opt.param_groups for p in g["params"]]
    tot_loss, tot_acc, n, micro = 0.0, 0.0, 0, 0
    for b in loader:
        if micro == 0:
            if on_step is not None:
                step_mod = on_step(state.step) or step_mod
            if margin_fn is not None:
                inner.head.margin = margin_fn(state.step)
            opt.zero_grad(set_to_none=True)
        micro += 1
        labels = b.labels.to(device)
        sync = micro == accum or not hasattr(step_mod, "no_sync")
        with (nullcontext() if sync else step_mod.no_sync()), _autocast(cfg, device):
            loss, logits = step_mod(b.wav.to(device), b.lengths.to(device), labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {state.step + 1}; lower the learning rate")
        with (nullcontext() if sync else step_mod.no_sync()):
            scaler.scale(loss / accum).backward()
        tot_loss += loss.item() / accum
        tot_acc += (logits.argmax(-1) == labels).float().mean().item() / accum
        if micro < accum:
            continue
        micro = 0
        scaler.unscale_(opt)
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], cfg.train.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        if ema is not None:
            ema.update()
        state.step += 1
        n += 1
        bar.update(1)
        bar.set_postfix(loss=f"{tot_loss / n:.3f}", acc=f"{tot_acc / n:.2f}", lr=f"{opt.param_groups[0]['lr']:.2e}",
                        margin=f"{float(getattr(inner.head, 'margin', 0.0)):.2f}")
    loss_acc = torch.tensor([tot_loss / max(n, 1), tot_acc / max(n, 1)])
    if dist.world_size() > 1:
        torch.distributed.all_reduce(loss_acc)
        loss_acc /= dist.world_size()
    return {"train_loss": float(loss_acc[0]), "train_acc": float(loss_acc[1]), "lr": opt.param_groups[0]["lr"],
            "margin": float(getattr(inner.head, "margin", 0.0))}, step_mod


def validate(model, ds: DatasetFolder, infos, cfg: Config, device: str, progress: bool, split: str = "valid",
             cache=None):
    """EER / minDCF on ``split`` trials, scored as ``train.valid_scoring`` says: cosine, or a PLDA
    fitted on the training utterances' embeddings of this very model (selects the checkpoint on the
    scoring it will be evaluated with).

    Embeddings come from the feature cache when given (frozen encoder), else from the waveforms
    (extraction sharded over ranks under DDP).
    """
    from .scoring import cosine_scores

    if cfg.train.valid_scoring not in VALID_SCORINGS:
        raise ValueError(f"unknown train.valid_scoring {cfg.train.valid_scoring!r}; valid: {', '.join(VALID_SCORINGS)}")
    trials = ds.trials(split)
    emb = _embed_for_validation(model, ds, trials.utterances, infos, cfg, device, progress, split, cache)
    if cfg.train.valid_scoring == "plda":
        from .scoring.plda import PLDA, plda_scores

        rows = _plda_rows(_training_rows(cfg, ds), cfg)
        tr = _embed_for_validation(model, ds, [p for p, _ in rows], infos, cfg, device, progress, "train", cache)
        spk_of = dict(rows)
        labels = [spk_of[k] for k in tr.keys]
        plda = PLDA.fit(tr.matrix, labels, dim=min(tr.matrix.shape[1], len(set(labels)) - 1))
        return metrics.compute_all(plda_scores(plda, emb, trials), trials.labels)
    return metrics.compute_all(cosine_scores(emb, trials), trials.labels)


VALID_SCORINGS = ("cosine", "plda")


def _plda_rows(rows: list[tuple[str, str]], cfg: Config) -> list[tuple[str, str]]:
    """Up to ``eval.plda_utts_per_speaker`` utterances (the first, sorted) of every training speaker
    with two or more; deterministic, so every cycle fits its PLDA on the same utterances."""
    by_spk: dict[str, list[str]] = {}
    for p, s in sorted(set(rows)):
        by_spk.setdefault(s, []).append(p)
    n = cfg.eval.plda_utts_per_speaker
    return [(p, s) for s, ps in by_spk.items() if len(ps) >= 2 for p in ps[:n]]


def _embed_for_validation(model, ds: DatasetFolder, keys: list[str], infos, cfg: Config, device: str,
                          progress: bool, split: str, cache=None):
    if cache is not None and split != "test":
        from .frontends.cache import cached_embeddings

        mx = 0
        if cfg.data.eval_max_sec:
            mx = int(model.frontend.frame_lengths(torch.tensor([round(cfg.data.eval_max_sec * model.sample_rate)]))[0])
        return cached_embeddings(model.backend, cache, keys, max_frames=mx, device=device)
    return extract_embeddings(model, ds, keys, infos, cfg.data.eval_batch_sec, cfg.data.eval_max_sec,
                              device, cfg.workers, progress, desc=f"{split} embed", distributed=True)


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    """metrics.csv: one row per cycle, rewritten whole (atomically) from the training history."""
    cols = METRIC_COLUMNS + sorted({k for r in rows for k in r} - set(METRIC_COLUMNS))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(run_dir / "metrics.csv", buf.getvalue())


def carry_head_state(head: nn.Module, state: dict) -> tuple[list[str], list[str]]:
    """Load a previous phase's head into ``head``, keeping the rows of the original speakers.

    Classes are indexed ``speaker + num_speakers · (i + 1)`` for speed factor ``i`` (data/dataset.py), so
    the first ``C`` rows along the class axis are the original speakers.  A tensor whose class axis holds
    ``k · C`` rows (phase 1 with speed classes, phase 2 without) is cut to its first ``C`` rows; one with
    fewer rows than ``C`` (speed classes added later) fills the first rows and keeps the fresh init for
    the rest.  Returns (loaded names, skipped names with the reason).
    """
    own = head.state_dict()
    loaded, skipped = [], []
    with torch.no_grad():
        for name, new in own.items():
            old = state.get(name)
            if old is None:
                skipped.append(f"{name} (absent)")
                continue
            if old.shape == new.shape:
                new.copy_(old)
                loaded.append(name)
                continue
            diff = [d for d in range(new.dim()) if old.dim() == new.dim() and old.shape[d] != new.shape[d]]
            if len(diff) != 1:
                skipped.append(f"{name} (shape {tuple(old.shape)} vs {tuple(new.shape)})")
                continue
            d = diff[0]
            a, b = old.shape[d], new.shape[d]
            if a > b and a % b == 0:  # keep the original speakers' rows
                new.copy_(old.narrow(d, 0, b))
            elif b > a and b % a == 0:
                new.narrow(d, 0, a).copy_(old)
            else:
                skipped.append(f"{name} ({a} vs {b} classes: not a multiple)")
                continue
            loaded.append(name)
    return loaded, skipped


def init_from(model: SpeakerEncoder, head, path: str, log) -> None:
    """Initialise from a previous phase (run folder → its best model), and its head (see
    :func:`carry_head_state`: speed-perturbation classes are dropped or added around the original rows)."""
    ckpt = read_checkpoint(path, with_head=True)
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    log.info(f"init_from {path}: {len(missing)} missing and {len(unexpected)} unexpected weights")
    hs = ckpt.get("head_state")
    if hs is not None:
        loaded, skipped = carry_head_state(head, hs)
        if skipped:
            log.info(f"init_from: head partly loaded; kept the fresh init of {', '.join(skipped)}")
        else:
            log.info(f"init_from: head loaded ({len(loaded)} tensors)")


def margin_ramp_length(t, total: int, log=None) -> int:
    """Steps of the margin ramp: ``margin_ramp_steps``, or ``margin_ramp_frac`` × ``total``; clamped so the
    ramp ends by the last step (a 1,500-step run with a 42,600-step ramp would train at margin ≈ 0.04)."""
    if t.margin_ramp_steps > 0 and t.margin_ramp_frac > 0:
        raise ValueError("margin ramp: set margin_ramp_steps (steps) or margin_ramp_frac (fraction of "
                         "nb_total_step), not both")
    if not 0.0 <= t.margin_ramp_frac <= 1.0:
        raise ValueError(f"margin_ramp_frac must be in [0, 1], got {t.margin_ramp_frac}")
    ramp = t.margin_ramp_steps if t.margin_ramp_steps > 0 else int(round(t.margin_ramp_frac * total))
    room = max(0, total - t.margin_ramp_begin)
    if ramp > room:
        if log is not None:
            log.info(f"margin ramp of {ramp} steps from step {t.margin_ramp_begin} ends after the last step "
                     f"{total}: clamped to {room} steps so the target margin is reached")
        ramp = room
    return ramp


def _training_rows(cfg: Config, ds: DatasetFolder) -> list[tuple[str, str]]:
    rows = ds.train
    if cfg.data.max_train_utts and len(rows) > cfg.data.max_train_utts:
        idx = np.random.default_rng(cfg.seed).choice(len(rows), cfg.data.max_train_utts, replace=False)
        rows = [rows[i] for i in sorted(idx)]
    return rows


def _record_aug_kinds(cfg: Config, kinds: tuple, run_dir: Path | None, log) -> None:
    """The run's config lists the augmentation kinds in use (those without material are dropped)."""
    log.info(f"augmentation on {cfg.data.aug_prob:.0%} of crops, kinds: {', '.join(kinds)}")
    if list(kinds) != list(cfg.data.aug_kinds):
        log.info(f"aug_kinds {cfg.data.aug_kinds} -> {list(kinds)} (no material for the others)")
        cfg.data.aug_kinds = list(kinds)
        if run_dir is not None:
            save_config(cfg, run_dir / "config.yaml")


def _check_batch(cfg: Config) -> None:
    w, a, b = dist.world_size(), cfg.train.accum_steps, cfg.train.batch_size
    if a < 1 or b % (w * a):
        raise ValueError(f"batch_size {b} must be divisible by world size {w} × accum_steps {a}")


def fit(cfg: Config, run_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
        command: str = "") -> Path:
    """Train ``cfg`` into ``run_dir`` (created), or continue it when ``resume``; returns the run folder.

    The dataset is validated before the run folder is created; a start that fails before the first
    checkpoint removes the folder it created, so no half-made run is left behind.
    """
    splits = ("valid",) if cfg.train.skiptest else ("valid", "test")
    ds = open_dataset(cfg.data.data_dir)
    infos = check_dataset(ds, splits)
    run_dir = Path(run_dir or new_run_dir(None))
    created = not run_dir.exists()
    try:
        if cfg.model.model == "Stats":  # training-free: statistics + whitening, fitted (layersv.stats_train)
            from .stats_train import fit_stats

            return fit_stats(cfg, run_dir, progress, command, infos=infos)
        return _fit(cfg, run_dir, resume, progress, command, ds, infos)
    except BaseException:
        if created and dist.is_main() and not any((run_dir / f).exists() for f in ("model_last.pt", "model_last.json")):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _fit(cfg: Config, run_dir: Path, resume: bool, progress: bool, command: str, ds: DatasetFolder,
         infos: dict) -> Path:
    device = dist.setup(cfg.device)
    main = dist.is_main()
    run_dir = Path(dist.broadcast_object(str(run_dir)))
    _check_batch(cfg)
    if main:
        (run_dir / "scores").mkdir(parents=True, exist_ok=True)
    dist.barrier()
    log = setup_run_logger(run_dir if main else None)
    progress = progress and main
    seed_everything(cfg.seed + dist.rank())
    if command:
        log.info(f"USING COMMAND: {command}")
    if main and not resume:
        save_config(cfg, run_dir / "config.yaml")
    log.info("config: " + json.dumps(to_dict(cfg)))

    train_rows = _training_rows(cfg, ds)
    speakers = sorted({s for _, s in train_rows})
    spk_index = {s: i for i, s in enumerate(speakers)}
    log.info(f"dataset {ds.name}: {len(train_rows)} training utterances, {len(speakers)} speakers; "
             f"world size {dist.world_size()}")

    model = build_model(cfg).to(device)
    for note in usability_notes(infos, model.sample_rate, cfg.data.train_max_sec):
        log.info(f"warning: {note}")
        if main:
            print(f"layersv: warning: {note}", file=sys.stderr, flush=True)
    num_classes = len(speakers) * (1 + len(cfg.data.speed_perturb))  # LAP: each speed factor = new speakers
    head = build_head(cfg.head.head, getattr(model.backend, "head_dim", model.embedding_dim), num_classes, **cfg.head.args).to(device)
    log.info(f"parameters: frontend {count_parameters(model.frontend)} "
             f"(trainable {count_parameters(model.frontend, True)}), backend {count_parameters(model.backend)}, "
             f"head {count_parameters(head)}")
    total, per_cycle = effective_schedule(cfg)
    opt = build_optimizer(cfg.train.optimizer, param_groups(model, head, cfg.train.lr, cfg.train.backbone_lr,
                                                            cfg.train.head_weight_decay),
                          cfg.train.lr, cfg.train.weight_decay)
    sched = build_scheduler(cfg.train, opt, total)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.train.amp == "fp16" and device.startswith("cuda"))
    state = TrainState()
    if resume:
        ts = load_resume_state(run_dir)
        model.load_state_dict(ts["model"])  # one file holds everything resume needs: one atomic write
        head.load_state_dict(ts["head"])
        opt.load_state_dict(ts["optimizer"])
        sched.load_state_dict(ts["scheduler"])
        state = TrainState(**ts["state"])
        rngs = ts["rng"]
        set_rng_state(rngs[dist.rank()] if len(rngs) == dist.world_size() else rngs[0])
        if state.step >= cfg.train.unfreeze_at_step > 0:
            model.frontend.unfreeze(freeze_cnn=cfg.frontend.frz_cnn)
        log.info(f"resumed at step {state.step} (cycle {state.cycle})")
    elif cfg.train.init_from:
        init_from(model, head, cfg.train.init_from, log)
    ema = EMA(model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
    if ema is not None and resume and ts.get("ema") is not None:
        ema.model.load_state_dict(ts["ema"])


    margin_fn = None
    if cfg.train.margin_schedule != "none" and hasattr(head, "margin"):
        t = cfg.train
        ramp = margin_ramp_length(t, total, log)
        margin_fn = MarginSchedule(float(head.margin), t.margin_start, t.margin_ramp_begin, ramp, t.margin_schedule)
    talkers = [(str(ds.abspath(p)), spk_index[s]) for p, s in train_rows]  # speaker_babble material
    augmenter = build_augmenter(cfg.data, model.sample_rate, talkers, progress=progress, log=log)
    if augmenter is not None:
        _record_aug_kinds(cfg, augmenter.kinds, run_dir if main and not resume else None, log)
    crops = TrainCrops([(str(ds.abspath(p)), p) for p, _ in train_rows], [spk_index[s] for _, s in train_rows],
                       infos, model.sample_rate, cfg.data.train_max_sec, cfg.seed, cfg.data.fix_to_maxlen,
                       augmenter, tuple(cfg.data.speed_perturb), cfg.data.speed_prob)
    cache, step_model = None, model
    if cfg.frontend.cache:  # frozen encoder: train and validate from cached hidden states
        if (cfg.data.aug_prob > 0 and cfg.frontend.augment_copies < 1) or cfg.data.speed_perturb \
                or cfg.train.unfreeze_at_step:
            raise ValueError("cache: true works on stored hidden states: it excludes speed_perturb and "
                             "unfreeze_at_step, and augmentation (aug_prob > 0) needs augmented copies in the "
                             "cache (--augment_copies K)")
        from .frontends.cache import training_cache

        cache, crops, step_model = training_cache(cfg, model, ds, train_rows, crops.labels, progress and main, log)
    step_model = with_time_masks(step_model, cfg)
    step_mod = _wrap(TrainStep(step_model, head), device)

    def on_step(step: int):
        if cfg.train.unfreeze_at_step and step == cfg.train.unfreeze_at_step:
            model.frontend.unfreeze(freeze_cnn=cfg.frontend.frz_cnn)
            log.info(f"step {step}: encoder unfrozen")
            return _wrap(TrainStep(with_time_masks(model, cfg), head), device)  # DDP must see the new parameters
        return None

    tlog = build_logger(cfg.train.logger, run_dir, to_dict(cfg)) if main else build_logger("none", run_dir, {})
    if main and resume:
        write_metrics(run_dir, state.history)
    bar = tqdm(total=total, initial=state.step, desc="train", disable=not progress, unit="step", dynamic_ncols=True)
    t0 = time.time() - state.elapsed_s
    while state.step < total:
        steps = min(per_cycle, total - state.step)
        loader = DataLoader(crops, batch_sampler=StepBatches(state.step, steps, cfg.train.batch_size,
                                                             dist.world_size(), dist.rank(), cfg.train.accum_steps),
                            collate_fn=getattr(crops, "collate", collate), num_workers=cfg.workers)
        try:
            tr, step_mod = train_one_cycle(step_mod, opt, sched, scaler, loader, cfg, state, steps, device, bar,
                                           margin_fn, ema, on_step)
        except FloatingPointError as e:
            kept = (f"{run_dir} keeps the last good checkpoint (step {state.history[-1]['step']})"
                    if state.history else "no checkpoint was written yet")
            log.info(f"stopped: {e}; {kept}")
            raise FloatingPointError(f"{e}; training stopped, {kept}") from None
        state.cycle += 1
        eval_model = ema.model if ema is not None else model
        va = validate(eval_model, ds, infos, cfg, device, progress, cache=cache)
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
            te = validate(eval_model, ds, infos, cfg, device, progress, split="test")
            row["test_eer"] = te["eer"]
            msg += f" | test EER {te['eer']:.2f} % (logged only, never used to select)"
        state.history.append(row)
        rngs = dist.gather_objects(rng_state())
        if main:
            log.info(msg)
            bar.write(msg) if progress else print(msg, flush=True)
            tlog.log(state.step, {f"train/{k}": v for k, v in tr.items()} |
                     {f"valid/{k}": v for k, v in va.items() if k not in ("trials", "targets")})
            if improved:
                save_model(eval_model, run_dir / "model_best", head_state=head.state_dict(), step=state.step,
                           valid=va)
            save_model(model, run_dir / "model_last", step=state.step, valid=va)
            save_resume_state(run_dir, {
                "format": CHECKPOINT_FORMAT, "step": state.step, "model": model.state_dict(),
                "head": head.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "state": jsonable({**vars(state), "history": list(state.history)}), "rng": rngs,
                "ema": ema.model.state_dict() if ema is not None else None,
            })
            write_metrics(run_dir, state.history)
        dist.barrier()
    bar.close()
    tlog.close()
    log.info(f"training done: best valid EER {state.best_eer:.2f} % at step {state.best_step}")
    if main and not cfg.train.skiptest:
        from .evaluate import evaluate_split

        evaluate_split(run_dir, cfg, ds, infos, train_rows, device=device, progress=progress, log=log)
    dist.teardown()
    return run_dir


def _wrap(step_mod: TrainStep, device: str) -> nn.Module:
    if dist.world_size() == 1:
        return step_mod
    if device.startswith("cuda"):
        step_mod = nn.SyncBatchNorm.convert_sync_batchnorm(step_mod)
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return nn.parallel.DistributedDataParallel(step_mod, device_ids=ids, find_unused_parameters=True)
