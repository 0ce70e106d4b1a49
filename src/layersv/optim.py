"""Optimisers and learning-rate schedules of the seed systems, stepped once per optimizer step.

* ``onecycle``  — UniPool / L-TDNN: OneCycleLR, max lr 3e-3, 10 % warm-up, cosine (PyTorch defaults).
* ``cosine``    — cosine decay to 0 after a linear warm-up of ``warmup_steps``.
* ``cosine_restarts`` — LAP: linear warm-up then cosine annealing with warm restarts every
  ``cycle_steps`` (multiplied by ``cycle_mult`` each restart), peak decayed by ``restart_decay``.
* ``cyclic``    — ECAPA-TDNN: triangular2 cyclic lr between ``min_lr`` and lr, half-cycle ``cycle_steps``.
* ``tristage``  — FinetuneWV2 (fairseq): warm-up 10 %, hold 40 %, exponential decay 50 % to lr·0.05.
* ``constant``  — e.g. large-margin fine-tuning.

Optimisers: ``adam``, ``adamw``, ``sgd`` (momentum 0.9), ``rmsprop`` (SincNet: alpha 0.95, eps 1e-8).
Parameter groups: backend + head at ``lr``; trainable encoder parameters at ``backbone_lr``.
"""

from __future__ import annotations

import math

import torch

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULERS = ("onecycle", "cosine", "cosine_restarts", "cyclic", "tristage", "constant")


def param_groups(model: torch.nn.Module, head: torch.nn.Module, lr: float, backbone_lr: float) -> list[dict]:
    groups = [{"params": [p for p in list(model.backend.parameters()) + list(head.parameters()) if p.requires_grad],
               "lr": lr, "name": "backend"}]
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
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.95, eps=1e-8, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")


def lr_factor(kind: str, step: int, total: int, warmup: int = 0, cycle_steps: int = 0, cycle_mult: float = 1.0,
              restart_decay: float = 1.0, min_factor: float = 0.0) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based) of ``total``."""
    if kind == "constant":
        return 1.0
    if warmup > 0 and step < warmup and kind in ("cosine", "cosine_restarts"):
        return (step + 1) / warmup
    if kind == "cosine":
        t = (step - warmup) / max(1, total - warmup)
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
    if kind == "tristage":
        w, h = int(0.1 * total), int(0.4 * total)
        if step < w:
            return 0.01 + 0.99 * step / max(1, w)
        if step < w + h:
            return 1.0
        d = (step - w - h) / max(1, total - w - h)
        return math.exp(math.log(0.05) * min(1.0, d))
    raise ValueError(f"unknown scheduler {kind!r}; valid: {', '.join(SCHEDULERS)}")


def build_scheduler(cfg_train, opt: torch.optim.Optimizer, total: int):
    t = cfg_train
    if t.scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {t.scheduler!r}; valid: {', '.join(SCHEDULERS)}")
    if t.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                   total_steps=max(total, 2), pct_start=t.pct_start,
                                                   cycle_momentum=t.optimizer in ("sgd", "adam", "adamw"))
    min_factor = t.min_lr / t.lr if t.lr > 0 else 0.0

    def f(step: int) -> float:
        return lr_factor(t.scheduler, step, total, t.warmup_steps, t.cycle_steps, t.cycle_mult, t.restart_decay,
                         min_factor)

    return torch.optim.lr_scheduler.LambdaLR(opt, f)
