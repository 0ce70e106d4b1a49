#!/usr/bin/env python
"""Benchmark layersv.metrics (sort-based) against a naive threshold sweep.

Usage::

    python bench/metrics.py [--n 10000000] [--sub 20000] [--seed 0]

* Generates ``n`` trials: 10 % targets with scores ~ N(1, 1), non-targets ~ N(0, 1).
* Times EER + minDCF(0.01) + minDCF(0.05) with the fast implementation on all
  ``n`` trials (target: < 10 s for 10 M trials).
* Times a straightforward sweep (Python loop over every unique threshold,
  numpy comparisons per threshold) and the fast implementation on the same
  ``sub``-trial subsample, and checks that both agree.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

try:
    import layersv.metrics as M
except ImportError:  # package not installed: use the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    import layersv.metrics as M

TARGET_SECONDS = 10.0


def make_trials(n: int, seed: int, p_tar: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Random trials: labels (n,) bool, scores (n,) float64."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < p_tar
    labels[0], labels[-1] = True, False
    scores = rng.standard_normal(n) + labels
    return scores, labels


def fast_metrics(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """EER (%), minDCF 0.01, minDCF 0.05 via the public layersv.metrics API."""
    return (
        M.eer(scores, labels),
        M.min_dcf(scores, labels, 0.01),
        M.min_dcf(scores, labels, 0.05),
    )


def sweep_metrics(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Naive reference: loop over every unique threshold, count per threshold.

    Same conventions as layersv.metrics (accept iff score >= t, thresholds =
    unique scores + inf, same EER interpolation, normalised minDCF).
    """
    tar = scores[labels]
    non = scores[~labels]
    thresholds = list(np.unique(scores)) + [np.inf]
    pm = np.empty(len(thresholds))
    pfa = np.empty(len(thresholds))
    for k, t in enumerate(thresholds):
        pm[k] = np.count_nonzero(tar < t) / tar.size
        pfa[k] = np.count_nonzero(non >= t) / non.size
    eer = None
    for i in range(len(thresholds)):
        if pm[i] >= pfa[i]:
            if i == 0:
                eer = (pm[0] + pfa[0]) / 2
            else:
                m0, f0, m1, f1 = pm[i - 1], pfa[i - 1], pm[i], pfa[i]
                a = (f0 - m0) / ((f0 - m0) - (f1 - m1))
                eer = m0 + a * (m1 - m0)
            break
    dcfs = []
    for p in (0.01, 0.05):
        dcfs.append(float(np.min((p * pm + (1 - p) * pfa) / min(p, 1 - p))))
    return 100.0 * float(eer), dcfs[0], dcfs[1]


def timed(fn, *args):  # noqa: ANN001, ANN202
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000, help="number of trials (default 10M)")
    ap.add_argument("--sub", type=int, default=20_000, help="subsample size for the sweep")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    scores, labels = make_trials(args.n, args.seed)
    sub = min(args.sub, args.n)
    rng = np.random.default_rng(args.seed + 1)
    idx = rng.choice(args.n, size=sub, replace=False)
    s_sub, l_sub = scores[idx], labels[idx]
    l_sub[0], l_sub[-1] = True, False  # guarantee both classes

    fast_sub, t_fast_sub = timed(fast_metrics, s_sub, l_sub)
    sweep_sub, t_sweep_sub = timed(sweep_metrics, s_sub, l_sub)
    agree = bool(np.allclose(fast_sub, sweep_sub, rtol=0, atol=1e-9))

    fast_all, t_fast_all = timed(fast_metrics, scores, labels)
    ok = t_fast_all < TARGET_SECONDS
    all_in_one, t_compute_all = timed(M.compute_all, scores, labels)
    agree_all = bool(
        np.allclose(
            fast_all,
            (all_in_one["eer"], all_in_one["min_dcf_0.01"], all_in_one["min_dcf_0.05"]),
            rtol=0,
            atol=1e-12,
        )
    )

    print(f"layersv.metrics benchmark  (eer + min_dcf 0.01 + min_dcf 0.05), cpus={os.cpu_count()}")
    print()
    print(f"{'n':>12} | {'fast [s]':>10} | {'sweep [s]':>10} | {'sweep/fast':>10}")
    print(f"{'-' * 12}-+-{'-' * 10}-+-{'-' * 10}-+-{'-' * 10}")
    print(
        f"{sub:>12,} | {t_fast_sub:>10.4f} | {t_sweep_sub:>10.4f} | "
        f"{t_sweep_sub / max(t_fast_sub, 1e-12):>9.0f}x"
    )
    print(f"{args.n:>12,} | {t_fast_all:>10.4f} | {'-':>10} | {'-':>10}")
    print()
    print("fast = eer() + min_dcf(0.01) + min_dcf(0.05), three public calls (three sorts);")
    print(
        f"compute_all() on {args.n:,} trials (one shared sort, same three values): "
        f"{t_compute_all:.2f} s, {'identical' if agree_all else 'DIFFERENT'}"
    )
    print()
    print(
        f"subsample values  fast : EER={fast_sub[0]:.6f}%  minDCF0.01={fast_sub[1]:.6f}"
        f"  minDCF0.05={fast_sub[2]:.6f}"
    )
    print(
        f"subsample values  sweep: EER={sweep_sub[0]:.6f}%  minDCF0.01={sweep_sub[1]:.6f}"
        f"  minDCF0.05={sweep_sub[2]:.6f}"
    )
    print(f"agreement on subsample: {'OK' if agree else 'MISMATCH'}")
    print(
        f"full n={args.n:,}: EER={fast_all[0]:.4f}%  minDCF0.01={fast_all[1]:.4f}"
        f"  minDCF0.05={fast_all[2]:.4f}"
    )
    print(
        f"fast time on {args.n:,} trials: {t_fast_all:.2f} s  "
        f"-> {'PASS' if ok else 'FAIL'} (target < {TARGET_SECONDS:.0f} s)"
    )
    return 0 if (ok and agree and agree_all) else 1


if __name__ == "__main__":
    sys.exit(main())
