"""Training-step cost of the speechocean762 recipe's backends, side by side, on CPU.

Builds each backend from its recipe config (``recipes/speechocean762/configs/<system>.yaml``: the
model args, ``frontend.layers``) for frozen Whisper-base features — 7 hidden states × 100 frames
(2 s crops at 50 frames/s) × 512, batch 64 — and times forward + backward of one batch (best of
``--reps``), printing seconds per step and the ratio to SUPERB-pooled.

Run: ``PYTHONPATH=src python bench/recipe_backends.py [--threads 1] [--reps 1] [--systems superb_pooled,unipool]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from layersv.backends import build_backend
from layersv.utils import count_parameters

CONFIGS = Path(__file__).resolve().parents[1] / "recipes" / "speechocean762" / "configs"


def recipe(system: str) -> tuple[str, dict, int]:
    cfg, seen = {}, CONFIGS / f"{system}.yaml"
    chain = []
    while seen is not None:  # the recipe file and the recipe files it extends (built-ins only give defaults)
        d = yaml.safe_load(seen.read_text())
        chain.append(d)
        parent = d.get("extends")
        seen = CONFIGS / parent if isinstance(parent, str) and (CONFIGS / parent).is_file() else None
    for d in reversed(chain):
        cfg.setdefault("model", {}).update(d.get("model", {}))
        cfg.setdefault("frontend", {}).update(d.get("frontend", {}))
    layers = cfg["frontend"].get("layers") or list(range(7))
    return cfg["model"]["model"], dict(cfg["model"].get("args", {})), len(layers)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--systems", default="superb_pooled,superb,lap,mhfa,unipool,ltdnn")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for system in a.systems.split(","):
        name, args, n_layers = recipe(system)
        torch.manual_seed(0)
        be = build_backend(name, n_layers, 512, **args)
        h, n = torch.randn(64, n_layers, 100, 512), torch.full((64,), 100)
        best = float("inf")
        for _ in range(a.reps):
            t = time.perf_counter()
            be(h, n).float().pow(2).mean().backward()
            best = min(best, time.perf_counter() - t)
        rows.append((system, name, n_layers, count_parameters(be), best))
    ref = next((r[4] for r in rows if r[0] == "superb_pooled"), rows[0][4])
    print(f"{'system':15s} {'backend':14s} {'states':>6s} {'params':>10s} {'s/step':>8s} {'x superb_pooled':>16s}")
    for system, name, nl, p, t in rows:
        print(f"{system:15s} {name:14s} {nl:6d} {p:10d} {t:8.2f} {t / ref:16.1f}")


if __name__ == "__main__":
    main()
