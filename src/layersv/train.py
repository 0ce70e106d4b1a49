"""The gradient loop, explicit: ``train_cycles`` → ``train_one_cycle`` → ``validate`` → checkpoint.

A *cycle* is ``nb_steps_eval`` optimizer steps followed by validation on the dataset's
**validation** trials; ``model_best.{json,safetensors}`` is the cycle with the lowest validation EER (the
seeds also looked at test scores while selecting; here the test set is scored once, on the
selected checkpoint, by :func:`layersv.runs.fit`, unless ``eval_test_each_cycle`` asks for a per-cycle
look that is logged only).  ``model_last.{json,safetensors}`` is the encoder of the last cycle and
``model_last.pt`` carries optimizer, scheduler, head, EMA and RNG states (read back with
``weights_only=True``; see :mod:`layersv.checkpoint`), so ``--resume RUN`` continues exactly where the
last finished cycle ended and reaches the same final metrics.

This module is the loop only: building the model, head, optimizer, data and resume state is the run
floor's job (:mod:`layersv.runs.gradient`), which hands a :class:`Trainer` to :func:`train_cycles`.
Under ``torchrun`` every rank trains on its share of each global batch (DDP); see
:mod:`layersv.distributed`.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from . import distributed as dist, metrics
from .checkpoint import FORMAT as CHECKPOINT_FORMAT, jsonable, save_resume_state
from .config import Config
from .data.dataset_folder import DatasetFolder
from .embed.batches import extract_embeddings
from .embed.hidden import hidden_state_embeddings
from .model import SpeakerEncoder, save_model
from .scoring import cosine_scores
from .scoring.plda import fit_speaker_plda, plda_scores, plda_training_rows
from .utils import rng_state

@dataclass
class TrainState:
    """Where the loop is: steps, cycles, best validation EER, and the metrics.csv rows (kept in model_last.pt)."""

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
    """``steps`` optimizer steps (each ``accum_steps`` micro-batches of ``Batch(wav (b, S), lengths, labels)``).

    Returns (mean loss / accuracy / lr / margin, the step module — re-wrapped if ``on_step`` changed it).
    """
    inner = getattr(step_mod, "module", step_mod)
    inner.train()
    accum = cfg.train.accum_steps
    params = [p for g in opt.param_groups for p in g["params"]]
    tot_loss, tot_acc, n, micro = 0.0, 0.0, 0, 0
    for b in loader:
        if micro == 0:
            step_mod = _begin_step(step_mod, inner, opt, state, margin_fn, on_step)
        micro += 1
        loss, acc = _micro_step(step_mod, scaler, b, cfg, state, device, sync=micro == accum)
        tot_loss, tot_acc = tot_loss + loss / accum, tot_acc + acc / accum
        if micro < accum:
            continue
        micro, n = 0, n + 1
        _optimizer_step(opt, sched, scaler, params, cfg.train.grad_clip, ema)
        state.step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{tot_loss / n:.3f}", acc=f"{tot_acc / n:.2f}", lr=f"{opt.param_groups[0]['lr']:.2e}",
                        margin=f"{float(getattr(inner.head, 'margin', 0.0)):.2f}")
    loss_acc = torch.tensor([tot_loss / max(n, 1), tot_acc / max(n, 1)])
    if dist.world_size() > 1:
        torch.distributed.all_reduce(loss_acc)
        loss_acc /= dist.world_size()
    return {"train_loss": float(loss_acc[0]), "train_acc": float(loss_acc[1]), "lr": opt.param_groups[0]["lr"],
            "margin": float(getattr(inner.head, "margin", 0.0))}, step_mod


def _begin_step(step_mod, inner, opt, state: TrainState, margin_fn, on_step):
    """Before the first micro-batch of a step: unfreeze hook, margin schedule, zeroed gradients."""
    if on_step is not None:
        step_mod = on_step(state.step) or step_mod
    if margin_fn is not None:
        inner.head.margin = margin_fn(state.step)
    opt.zero_grad(set_to_none=True)
    return step_mod


def _micro_step(step_mod, scaler, b, cfg: Config, state: TrainState, device: str, sync: bool) -> tuple[float, float]:
    """Forward + backward of one micro-batch (gradients synchronised across ranks only when ``sync``)
    → (loss, accuracy)."""
    labels = b.labels.to(device)
    sync = sync or not hasattr(step_mod, "no_sync")
    with (nullcontext() if sync else step_mod.no_sync()), _autocast(cfg, device):
        loss, logits = step_mod(b.wav.to(device), b.lengths.to(device), labels)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss at step {state.step + 1}; lower the learning rate")
    with (nullcontext() if sync else step_mod.no_sync()):
        scaler.scale(loss / cfg.train.accum_steps).backward()
    return loss.item(), (logits.argmax(-1) == labels).float().mean().item()


def _optimizer_step(opt, sched, scaler, params, grad_clip: float, ema) -> None:
    scaler.unscale_(opt)
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], grad_clip)
    scaler.step(opt)
    scaler.update()
    sched.step()
    if ema is not None:
        ema.update()


def validate(model, ds: DatasetFolder, infos, cfg: Config, device: str, progress: bool, split: str = "valid",
             cache=None, train_rows: list | None = None):
    """EER / minDCF on ``split`` trials, scored as ``train.valid_scoring`` says: cosine, or a PLDA
    fitted on the embeddings of ``train_rows`` ((path, speaker), the run's training rows) by this very
    model (selects the checkpoint on the scoring it will be evaluated with).

    Embeddings come from the feature cache when given (frozen encoder), else from the waveforms
    (extraction sharded over ranks under DDP).
    """
    if cfg.train.valid_scoring not in VALID_SCORINGS:
        raise ValueError(f"unknown train.valid_scoring {cfg.train.valid_scoring!r}; valid: {', '.join(VALID_SCORINGS)}")
    trials = ds.trials(split)
    emb = _embed_for_validation(model, ds, trials.utterances, infos, cfg, device, progress, split, cache)
    if cfg.train.valid_scoring == "plda":
        e = cfg.eval
        rows = plda_training_rows(train_rows if train_rows is not None else ds.train, e.plda_speakers,
                                  e.plda_utts_per_speaker, cfg.seed)
        tr = _embed_for_validation(model, ds, [p for p, _ in rows], infos, cfg, device, progress, "train", cache)
        spk_of = dict(rows)
        plda = fit_speaker_plda(tr.matrix, [spk_of[k] for k in tr.keys], e.plda_dim)
        return metrics.compute_all(plda_scores(plda, emb, trials), trials.labels)
    return metrics.compute_all(cosine_scores(emb, trials), trials.labels)


VALID_SCORINGS = ("cosine", "plda")


def _embed_for_validation(model, ds: DatasetFolder, keys: list[str], infos, cfg: Config, device: str,
                          progress: bool, split: str, cache=None):
    if cache is not None and split != "test":
        mx = 0
        if cfg.data.eval_max_sec:
            mx = int(model.frontend.frame_lengths(torch.tensor([round(cfg.data.eval_max_sec * model.sample_rate)]))[0])
        return hidden_state_embeddings(model.backend, cache, keys, max_frames=mx, device=device)
    return extract_embeddings(model, ds, keys, infos, cfg.data.eval_batch_sec, cfg.data.eval_max_sec,
                              device, cfg.workers, progress, desc=f"{split} embed", distributed=True)


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


@dataclass
class Trainer:
    """Everything :func:`train_cycles` needs, built by :mod:`layersv.runs.gradient`."""

    cfg: Config
    run_dir: Path
    model: SpeakerEncoder
    head: nn.Module
    step_mod: nn.Module
    opt: Any
    sched: Any
    scaler: Any
    crops: Any  # TrainCrops / CachedCrops: items of the deterministic stream, with a ``collate``
    ds: DatasetFolder
    infos: dict
    device: str
    log: Any
    tlog: Any  # metrics logger (tensorboard, wandb, ... or none)
    state: TrainState = field(default_factory=TrainState)
    margin_fn: Callable | None = None
    ema: EMA | None = None
    on_step: Callable | None = None
    cache: Any = None  # FeatureCache of the validation utterances (frozen encoder), or None
    progress: bool = True
    train_rows: list = field(default_factory=list)  # (path, speaker) trained on (valid_scoring plda fits on them)


def train_cycles(t: Trainer, write_metrics: Callable[[Path, list], None]) -> TrainState:
    """Cycles until ``nb_total_step``: train, validate, checkpoint (rank 0); returns the final state."""
    total, per_cycle = effective_schedule(t.cfg)
    main = dist.is_main()
    bar = tqdm(total=total, initial=t.state.step, desc="train", disable=not t.progress, unit="step",
               dynamic_ncols=True)
    t0 = time.time() - t.state.elapsed_s
    while t.state.step < total:
        tr = _train_cycle(t, min(per_cycle, total - t.state.step), bar)
        row, va, improved, msg = _validate_cycle(t, tr, total, t0)
        rngs = dist.gather_objects(rng_state())
        if main:
            t.log.info(msg)
            bar.write(msg) if t.progress else print(msg, flush=True)
            t.tlog.log(t.state.step, {f"train/{k}": v for k, v in tr.items()} |
                       {f"valid/{k}": v for k, v in va.items() if k not in ("trials", "targets")})
            save_cycle(t, va, improved, rngs)
            write_metrics(t.run_dir, t.state.history)
        dist.barrier()
    bar.close()
    t.tlog.close()
    t.log.info(f"training done: best valid EER {t.state.best_eer:.2f} % at step {t.state.best_step}")
    return t.state


def _train_cycle(t: Trainer, steps: int, bar) -> dict:
    """One cycle of ``steps`` optimizer steps; a non-finite loss stops the run naming the kept checkpoint."""
    c, s = t.cfg, t.state
    loader = DataLoader(t.crops, batch_sampler=StepBatches(s.step, steps, c.train.batch_size, dist.world_size(),
                                                           dist.rank(), c.train.accum_steps),
                        collate_fn=t.crops.collate, num_workers=c.workers)
    try:
        tr, t.step_mod = train_one_cycle(t.step_mod, t.opt, t.sched, t.scaler, loader, c, s, steps, t.device, bar,
                                         t.margin_fn, t.ema, t.on_step)
    except FloatingPointError as e:
        kept = (f"{t.run_dir} keeps the last good checkpoint (step {s.history[-1]['step']})"
                if s.history else "no checkpoint was written yet")
        t.log.info(f"stopped: {e}; {kept}")
        raise FloatingPointError(f"{e}; training stopped, {kept}") from None
    s.cycle += 1
    return tr


def _validate_cycle(t: Trainer, tr: dict, total: int, t0: float) -> tuple[dict, dict, bool, str]:
    """Validation EER of the cycle's model (EMA if any) → (metrics.csv row, metrics, improved, log line)."""
    s, c = t.state, t.cfg
    eval_model = t.ema.model if t.ema is not None else t.model
    va = validate(eval_model, t.ds, t.infos, c, t.device, t.progress, cache=t.cache, train_rows=t.train_rows)
    improved = va["eer"] < s.best_eer
    if improved:
        s.best_eer, s.best_step = va["eer"], s.step
    s.elapsed_s = time.time() - t0
    row = {"cycle": s.cycle, "step": s.step, **tr, "valid_eer": va["eer"],
           "valid_min_dcf_0.01": va["min_dcf_0.01"], "valid_min_dcf_0.05": va["min_dcf_0.05"],
           "best_valid_eer": s.best_eer, "elapsed_s": s.elapsed_s}
    msg = (f"cycle {s.cycle} step {s.step}/{total}: loss {tr['train_loss']:.4f} acc {tr['train_acc']:.3f} "
           f"| valid EER {va['eer']:.2f} % minDCF0.01 {va['min_dcf_0.01']:.4f} (best {s.best_eer:.2f} %)")
    if c.train.eval_test_each_cycle and not c.train.skiptest:
        te = validate(eval_model, t.ds, t.infos, c, t.device, t.progress, split="test")
        row["test_eer"] = te["eer"]
        msg += f" | test EER {te['eer']:.2f} % (logged only, never used to select)"
    s.history.append(row)
    return row, va, improved, msg


def save_cycle(t: Trainer, va: dict, improved: bool, rngs: list) -> None:
    """model_best (when improved), model_last and the resume state model_last.pt (rank 0)."""
    s = t.state
    eval_model = t.ema.model if t.ema is not None else t.model
    if improved:
        save_model(eval_model, t.run_dir / "model_best", head_state=t.head.state_dict(), step=s.step, valid=va)
    save_model(t.model, t.run_dir / "model_last", step=s.step, valid=va)
    save_resume_state(t.run_dir, {
        "format": CHECKPOINT_FORMAT, "step": s.step, "model": t.model.state_dict(),
        "head": t.head.state_dict(), "optimizer": t.opt.state_dict(), "scheduler": t.sched.state_dict(),
        "state": jsonable({**vars(s), "history": list(s.history)}), "rng": rngs,
        "ema": t.ema.model.state_dict() if t.ema is not None else None,
    })


def wrap(step_mod: TrainStep, device: str) -> nn.Module:
    """DDP (with SyncBatchNorm on CUDA) under torchrun; the module itself in one process."""
    if dist.world_size() == 1:
        return step_mod
    if device.startswith("cuda"):
        step_mod = nn.SyncBatchNorm.convert_sync_batchnorm(step_mod)
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return nn.parallel.DistributedDataParallel(step_mod, device_ids=ids, find_unused_parameters=True)
