"""Forward+backward time per batch and parameters per backend, side by side, on CPU.

Input: base-size features, 13 hidden states × 150 frames (3 s at 50 frames/s) × 768, all
lengths full; WavLM-RawNetX also gets the 3 s waveform (48,000 samples).  The target batch is
128; a backend whose predicted time for 128 items exceeds ``--budget`` seconds is measured at
the largest power-of-two batch that fits the budget, and the table says so (the ms/item column
compares backends at whatever batch was measured; "per 128" extrapolates linearly).

Run: ``PYTHONPATH=src python bench/backends.py [--threads 2] [--reps 2] [--budget 8]``
"""

from __future__ import annotations

import argparse
import time

import torch

from layersv.backends import BACKENDS, build_backend
from layersv.utils import count_parameters

L, T, D, SR, HOP = 13, 150, 768, 16000, 320


def step(be, b: int) -> float:
    # a backend without parameters (ExploreWV2) back-propagates into the input, as into a trained encoder
    hidden = torch.randn(b, L, T, D, requires_grad=not any(p.requires_grad for p in be.parameters()))
    lengths = torch.full((b,), T, dtype=torch.long)
    kw = {}
    if getattr(be, "needs_waveform", False):
        kw = dict(wav=torch.randn(b, T * HOP), wav_lengths=torch.full((b,), T * HOP, dtype=torch.long))
    t = time.perf_counter()
    out = be(hidden, lengths, **kw)
    out.float().pow(2).mean().backward()
    be.zero_grad(set_to_none=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--budget", type=float, default=8.0, help="max predicted seconds per measured batch")
    ap.add_argument("--models", nargs="*", default=sorted(BACKENDS))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {a.threads} threads; input {L} x {T} x {D} (3 s), target batch {a.batch}, "
          f"{a.reps} timed reps after 1 warm-up")
    print(f"{'model':<16} {'params (M)':>10} {'batch':>6} {'s/batch':>8} {'ms/item':>8} {'s per 128':>10}")
    total = time.perf_counter()
    for name in a.models:
        be = build_backend(name, L, D).train()
        step(be, 2)  # first call: allocator and kernel set-up
        probe = step(be, 2) / 2  # per-item estimate (pessimistic: larger batches amortise better)
        b = a.batch
        while b > 2 and probe * b > a.budget:  # >= 2: BatchNorm in training mode
            b //= 2
        step(be, b)  # warm-up at the measured size
        times = [step(be, b) for _ in range(a.reps)]
        s = min(times)
        flag = "" if b == a.batch else "  (measured at a smaller batch, extrapolated)"
        print(f"{name:<16} {count_parameters(be) / 1e6:>10.3f} {b:>6} {s:>8.2f} {1000 * s / b:>8.1f} "
              f"{s / b * 128:>10.1f}{flag}", flush=True)
    print(f"total bench time {time.perf_counter() - total:.0f} s")


if __name__ == "__main__":
    main()
