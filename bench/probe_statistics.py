"""Per-layer statistics for the probe / Stats backend: encoder on the fly vs an existing feature cache.

    PYTHONPATH=src python bench/probe_statistics.py [--backbone_cfg tiny-wavlm] [--speakers 12]

Builds a synthetic dataset folder and a feature cache of its training + validation utterances
(fp16, not timed), then times, side by side in one run, the two ways `layersv probe` gets the
``(utterances, layers, 2 · dim)`` statistics, and reports the largest relative difference between
them (the cache stores fp16 hidden states).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone_cfg", default="tiny-wavlm")
    ap.add_argument("--frontend", default="ssl")
    ap.add_argument("--speakers", type=int, default=12)
    a = ap.parse_args()
    from layersv.data.dataset_folder import check_dataset, open_dataset
    from layersv.frontends.cache import FeatureCache
    from layersv.analysis.probe import frozen_frontend, layer_statistics, statistics
    from layersv.synthetic import generate_corpus

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_corpus(Path(tmp) / "data", num_speakers=a.speakers, utts_per_speaker=4,
                               split=(a.speakers // 2, a.speakers // 4, a.speakers - a.speakers // 2 - a.speakers // 4),
                               seed=1, progress=False, min_sec=2.0, max_sec=4.0)
        ds = open_dataset(data)
        infos = check_dataset(ds, ("valid",))
        fr = frozen_frontend(a.frontend, a.backbone_cfg)
        keys = [p for p, _ in ds.train] + ds.trials("valid").utterances
        FeatureCache.open_or_build(fr, a.frontend, ds, keys, Path(ds.root) / ".layersv_cache", progress=False)
        t0 = time.perf_counter()
        k1, s1 = layer_statistics(fr, ds, keys, infos, progress=False)
        t1 = time.perf_counter()
        k2, s2 = statistics(fr, a.frontend, ds, keys, infos, use_cache=True, progress=False)
        t2 = time.perf_counter()
        assert k1 == k2
        rel = np.abs(s1 - s2).max() / np.abs(s1).max()
        audio = sum(infos[k].duration for k in set(keys))
        print(f"{len(set(keys))} utterances, {audio:.0f} s of audio, {a.backbone_cfg}, stats {s1.shape[1:]}")
        print(f"encoder on the fly : {t1 - t0:7.2f} s")
        print(f"from feature cache : {t2 - t1:7.2f} s")
        print(f"ratio on-the-fly / cache: {(t1 - t0) / max(t2 - t1, 1e-9):.1f}x ; max relative difference {rel:.2e}")


if __name__ == "__main__":
    main()
