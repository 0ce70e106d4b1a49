"""Benchmark: evaluation-time embedding extraction and AS-norm scoring, measured side by side.

1. Extraction of 200 variable-length synthetic utterances (1-8 s) with a tiny random encoder
   (tiny-wavlm + SUPERB/ASTP): length-bucketed batches (layersv) vs batch 1 (the seeds' way).
2. AS-norm of 1,000,000 trials over 20,000 utterances with a 5,000-entry cohort (E = 192,
   top-k 300): per-unique-utterance statistics (layersv) vs per-trial statistics (the seeds'
   way, timed on a 2,000-trial sample and extrapolated).

Run: ``PYTHONPATH=src python bench/scoring.py`` (2 threads).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

torch.set_num_threads(2)
os.environ.setdefault("OMP_NUM_THREADS", "2")


def bench_extraction(n: int = 200) -> None:
    from layersv.config import Config
    from layersv.data.audio import audio_info
    from layersv.data.dataset_folder import DatasetFolder
    from layersv.embed.batches import extract_embeddings
    from layersv.model import build_model

    cfg = Config()
    cfg.model.args = {"embedding_dim": 64, "hidden_dim": 64}
    model = build_model(cfg).eval()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        keys = []
        for i in range(n):
            k = f"u{i:03d}.wav"
            sf.write(Path(d) / k, (rng.standard_normal(int(rng.uniform(1, 8) * 16000)) * 0.1).astype(np.float32),
                     16000)
            keys.append(k)
        ds = DatasetFolder(Path(d), "bench", Path(d), 16000)
        infos = {k: audio_info(Path(d) / k) for k in keys}
        total = sum(i.duration for i in infos.values())
        t = time.perf_counter()
        a = extract_embeddings(model, ds, keys, infos, batch_sec=120.0, progress=False)
        t_bucket = time.perf_counter() - t
        t = time.perf_counter()
        b = extract_embeddings(model, ds, keys, infos, batch_sec=1e-9, progress=False)  # one utterance per batch
        t_one = time.perf_counter() - t
    diff = float(np.abs(a.matrix - b.matrix).max())
    print(f"extraction of {n} utterances ({total:.0f} s of audio, tiny-wavlm + SUPERB/ASTP, 2 threads)")
    print(f"  length-bucketed (120 s/batch): {t_bucket:7.2f} s")
    print(f"  batch 1 (seeds):               {t_one:7.2f} s")
    print(f"  speed-up: {t_one / t_bucket:.2f}x   max |emb diff| padded vs single: {diff:.1e}")


def bench_asnorm(n_trials: int = 1_000_000, n_utts: int = 20_000, cohort_size: int = 5_000, dim: int = 192,
                 top_k: int = 300) -> None:
    from layersv.data.dataset_folder import Trials
    from layersv.embed.batches import Embeddings
    from layersv.scoring import cosine_scores
    from layersv.scoring.asnorm import asnorm_scores, normalize_rows

    rng = np.random.default_rng(0)
    keys = [f"u{i}" for i in range(n_utts)]
    emb = Embeddings(keys, normalize_rows(rng.standard_normal((n_utts, dim))))
    cohort = normalize_rows(rng.standard_normal((cohort_size, dim)))
    a, b = rng.integers(0, n_utts, n_trials), rng.integers(0, n_utts, n_trials)
    trials = Trials(rng.integers(0, 2, n_trials), [keys[i] for i in a], [keys[i] for i in b])
    mean = emb.matrix.mean(0)
    t = time.perf_counter()
    s = cosine_scores(emb, trials, mean=mean)
    out = asnorm_scores(emb, trials, s, cohort, top_k, mean=mean)
    t_fast = time.perf_counter() - t

    m = 2000  # per-trial statistics, as in the seed: both sides' cohort scores for every trial
    x = normalize_rows(emb.matrix - mean)
    t = time.perf_counter()
    slow = np.empty(m)
    for j in range(m):
        e, f = x[a[j]], x[b[j]]
        ce = np.sort(cohort @ e)[-top_k:]
        cf = np.sort(cohort @ f)[-top_k:]
        slow[j] = 0.5 * ((s[j] - ce.mean()) / ce.std(ddof=1) + (s[j] - cf.mean()) / cf.std(ddof=1))
    t_slow = (time.perf_counter() - t) * n_trials / m
    assert np.allclose(slow, out[:m], rtol=1e-4, atol=1e-4)
    print(f"AS-norm: {n_trials:,} trials, {n_utts:,} utterances, cohort {cohort_size:,}, E={dim}, top-k {top_k}")
    print(f"  per-unique-utterance statistics (layersv): {t_fast:7.2f} s  (target < 30 s)")
    print(f"  per-trial statistics (seeds, extrapolated from {m} trials): {t_slow:7.1f} s")
    print(f"  speed-up: {t_slow / t_fast:.1f}x   (results agree on the sample)")


if __name__ == "__main__":
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    bench_extraction()
    bench_asnorm()
