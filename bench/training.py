"""Training throughput on CPU, measured side by side in one run.

1. Frozen-encoder backend training, single process vs 2-process DDP (torchrun, gloo): optimizer
   steps per second at the same global batch, and the ratio.
2. Frozen-encoder backend training from the feature cache vs with the encoder on the fly
   (when layersv.frontends.cache exists): steps per second and the ratio.

    python bench/training.py [--steps 20] [--batch 16] [--backbone tiny-wavlm]

Each configuration is a real ``layersv train`` run on a synthetic dataset folder; the rate is
read from the run's metrics.csv (``elapsed_s`` counts training and validation of each cycle,
so runs use one long cycle and a tiny validation set to keep validation out of the number).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def run(args: list[str], ddp: int = 0) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ddp)] if ddp \
        else [sys.executable]
    t0 = time.perf_counter()
    subprocess.run([*launcher, "-m", "layersv.cli", *args], check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def steps_per_s(run_dir: Path) -> float:
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    return int(rows[-1]["step"]) / float(rows[-1]["elapsed_s"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--backbone", default="tiny-wavlm")
    a = ap.parse_args()
    from layersv.synthetic import generate_corpus

    tmp = Path(tempfile.mkdtemp(prefix="layersv-bench-"))
    data = generate_corpus(tmp / "data", num_speakers=40, utts_per_speaker=6, split=(36, 2, 2), seed=0, progress=False)
    base = ["train", str(data), "SUPERB", "--no-progress", "--skiptest", "--frz_pretrain", "--backbone_cfg", a.backbone,
            "--nb_total_step", str(a.steps), "--nb_steps_eval", str(a.steps), "--batch_size", str(a.batch),
            "--train_max_sec", "2.0"]
    results = {}
    results["single"] = (run([*base, "--out", str(tmp / "single")]), steps_per_s(tmp / "single"))
    results["ddp2"] = (run([*base, "--out", str(tmp / "ddp2")], ddp=2), steps_per_s(tmp / "ddp2"))
    try:
        import layersv.frontends.cache  # noqa: F401

        results["cache"] = (run([*base, "--cache", "--out", str(tmp / "cache")]), steps_per_s(tmp / "cache"))
    except ImportError:
        pass
    print(f"frozen {a.backbone} + SUPERB/ASTP, global batch {a.batch} x 2 s, {a.steps} steps, {os.cpu_count()} CPUs")
    print(f"{'configuration':<28} {'wall [s]':>9} {'steps/s':>9} {'vs single':>10}")
    for name, (wall, sps) in results.items():
        print(f"{name:<28} {wall:>9.1f} {sps:>9.2f} {sps / results['single'][1]:>9.2f}x")
    print("(wall includes process start, model build and the cache build; steps/s is the training cycle only)")


if __name__ == "__main__":
    main()
