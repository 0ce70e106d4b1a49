"""Optimisers and learning-rate schedules of the seed systems, stepped once per optimizer step.

* ``onecycle``  — UniPool / L-TDNN: OneCycleLR, max lr 3e-3, ``pct_start`` warm-up (10 %), then
  ``anneal_strategy`` (``cos``, PyTorch's default; ExploreWV2: ``linear``); start lr/25, end lr/25e4.
* ``cosine``    — LAP (CosineAnnealingWarmupRestarts with one cycle): linear warm-up from ``min_lr``
  to the peak over ``warmup_steps`` (or, when 0, the first ``pct_start`` of the steps), then cosine
  from the peak down to ``min_lr`` at the last step.
* ``cosine_restarts`` — linear warm-up (``warmup_steps``) from ``min_lr``, then cosine annealing with
  warm restarts every ``cycle_steps`` (× ``cycle_mult`` each restart), peak decayed by ``restart_decay``.
* ``cyclic``    — ECAPA-TDNN: triangular2 cyclic lr between ``min_lr`` and lr, half-cycle ``cycle_steps``
  (0 = total / 8, i.e. 4 full cycles as the seed).
* ``tristage``  — FinetuneWV2 (fairseq): warm-up 10 % from ``min_lr``, hold 40 %, exponential decay
  over 50 % to ``min_lr`` (the seed: 5e-6 → 5e-5 → 5e-6, start/end factor 0.1).
* ``constant``  — e.g. large-margin fine-tuning.

Each scheduler reads only the keys listed in ``SCHEDULER_KEYS``; a schedule key set (to a value
other than its default) for a scheduler that does not read it is an error (:func:`check_schedule_keys`),
never silently ignored.

Optimisers: ``adam``, ``adamw``, ``sgd`` (momentum 0.9), ``rmsprop`` (SincNet: alpha 0.95, eps 1e-7).
Parameter groups: backend + head at ``lr``; trainable encoder parameters at ``backbone_lr``.
"""

from __future__ import annotations

import math

import torch

from .config import SCHEDULER_KEYS, SCHEDULE_KEYS, TrainConfig

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULERS = ("onecycle", "cosine", "cosine_restarts", "cyclic", "tristage", "constant")
__all__ = ["SCHEDULE_KEYS", "SCHEDULER_KEYS", "check_schedule_keys", "build_optimizer", "build_scheduler",
           "lr_factor", "param_groups"]


def check_schedule_keys(cfg_train, defaults) -> None:
    """Raise ValueError when a schedule key differs from its default but ``cfg_train.scheduler`` ignores it."""
    if cfg_train.scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {cfg_train.scheduler!r}; valid: {', '.join(SCHEDULERS)}")
    reads = SCHEDULER_KEYS[cfg_train.scheduler]
    unread = [k for k in SCHEDULE_KEYS if k not in reads and getattr(cfg_train, k) != getattr(defaults, k)]
    if unread:
        users = {k: [s for s, ks in SCHEDULER_KEYS.items() if k in ks] for k in unread}
        raise ValueError(f"scheduler {cfg_train.scheduler!r} does not read " + "; ".join(
            f"{k}={getattr(cfg_train, k)!r} (read by {', '.join(users[k])})" for k in unread)
            + f"; it reads {', '.join(reads) or 'no schedule keys'}. Remove them or reset them to their defaults "
            + ", ".join(f"--{k} {getattr(defaults, k)}" for k in unread))
    if cfg_train.anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"anneal_strategy must be cos or linear, got {cfg_train.anneal_strategy!r}")
    if cfg_train.scheduler == "cosine" and cfg_train.warmup_steps > 0 and cfg_train.pct_start != defaults.pct_start:
        raise ValueError("cosine warm-up: set warmup_steps (steps) or pct_start (fraction), not both")
    if not 0.0 <= cfg_train.pct_start < 1.0:
        raise ValueError(f"pct_start must be in [0, 1), got {cfg_train.pct_start}")


def warmup_steps_of(cfg_train, total: int) -> int:
    """Warm-up length of ``cosine``: ``warmup_steps`` when set, else ``round(pct_start · total)``."""
    return cfg_train.warmup_steps if cfg_train.warmup_steps > 0 else int(round(cfg_train.pct_start * total))


def param_groups(model: torch.nn.Module, head: torch.nn.Module, lr: float, backbone_lr: float,
                 head_weight_decay: float = -1.0) -> list[dict]:
    """Backend (+ head) at ``lr``; the head in its own group with ``head_weight_decay`` when ≥ 0 (ECAPA
    seed: 2e-4 on the head, 2e-5 elsewhere); every frontend parameter at ``backbone_lr``."""
    own_head = head_weight_decay >= 0
    backend = list(model.backend.parameters()) + ([] if own_head else list(head.parameters()))
    groups = [{"params": [p for p in backend if p.requires_grad], "lr": lr, "name": "backend"}]
    if own_head:
        groups.append({"params": [p for p in head.parameters() if p.requires_grad], "lr": lr, "name": "head",
                       "weight_decay": head_weight_decay})
    # every frontend parameter joins the optimizer (a frozen encoder may be unfrozen later, e.g. ExploreWV2)
    fr = [p for p in model.frontend.parameters()]
    if fr and backbone_lr > 0:
        groups.append({"params": fr, "lr": backbone_lr, "name": "frontend"})
    return groups


def build_optimizer(name: str, groups: list[dict], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.95, eps=1e-7, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")


def lr_factor(kind: str, step: int, total: int, warmup: int = 0, cycle_steps: int = 0, cycle_mult: float = 1.0,
              restart_decay: float = 1.0, min_factor: float = 0.0) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based) of ``total``."""
    if kind == "constant":
        return 1.0
    if warmup > 0 and step < warmup and kind in ("cosine", "cosine_restarts"):
        return min_factor + (1 - min_factor) * step / warmup  # linear from min_lr (step 0) to the peak
    if kind == "cosine":
        t = (step - warmup) / max(1, total - 1 - warmup)  # the last step (total - 1) is at min_lr
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    if kind == "cosine_restarts":
        s, length, peak = step - warmup, max(1, cycle_steps or (total - warmup)), 1.0
        while s >= length:
            s -= length
            length = max(1, int(length * cycle_mult))
            peak *= restart_decay
        return min_factor + (peak - min_factor) * 0.5 * (1 + math.cos(math.pi * s / length))
    if kind == "cyclic":  # triangular2: amplitude halves every full cycle
        half = max(1, cycle_steps or max(1, total // 8))
        cycle, pos = divmod(step, 2 * half)
        x = pos / half if pos < half else 2 - pos / half
        return min_factor + (1 - min_factor) * x / (2**cycle)
    if kind == "tristage":  # fairseq tri_stage: init = final = min_factor (the seed: 0.1)
        w, h = int(0.1 * total), int(0.4 * total)
        lo = min_factor if min_factor > 0 else 0.01
        if step < w:
            return lo + (1 - lo) * step / max(1, w)
        if step < w + h:
            return 1.0
        d = (step - w - h) / max(1, total - 1 - w - h)
        return math.exp(math.log(lo) * min(1.0, d))
    raise ValueError(f"unknown scheduler {kind!r}; valid: {', '.join(SCHEDULERS)}")


def build_scheduler(cfg_train, opt: torch.optim.Optimizer, total: int):
    t = cfg_train
    check_schedule_keys(t, TrainConfig())
    if t.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                   total_steps=max(total, 2), pct_start=t.pct_start,
                                                   anneal_strategy=t.anneal_strategy,
                                                   cycle_momentum=t.optimizer in ("sgd", "adam", "adamw"))
    min_factor = t.min_lr / t.lr if t.lr > 0 else 0.0
    if min_factor > 1.0:
        raise ValueError(f"min_lr {t.min_lr} is above the peak lr {t.lr}")
    warmup = warmup_steps_of(t, total) if t.scheduler == "cosine" else t.warmup_steps

    def f(step: int) -> float:
        return lr_factor(t.scheduler, step, total, warmup, t.cycle_steps, t.cycle_mult, t.restart_decay,
                         min_factor)

    return torch.optim.lr_scheduler.LambdaLR(opt, f)
