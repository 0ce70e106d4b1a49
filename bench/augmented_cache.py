"""Augmented feature cache vs the encoder on the fly with the same augmentation, side by side in one run.

For a frozen encoder + SUPERB/ASTP on a synthetic dataset folder, with augmentation on ``--aug_prob``
of crops (``--kinds``, default the four corpus-free kinds):
  * ``fly``: ``layersv train --aug_prob P`` — every crop augmented (or not) and encoded on the fly;
  * ``cache``: ``layersv cache DATA --augment_copies K`` (timed: the one-time build), then
    ``layersv train --cache true --aug_prob P --augment_copies K`` — crops read from the clean or an
    augmented copy.
Prints optimizer steps/s of each (metrics.csv: one training cycle; its ``elapsed_s`` also counts the
validation of that cycle, kept tiny), their ratio, the build time, the break-even step count, and
the disk cost of one augmented copy (fp16 shards) against the audio it was made from.

    python bench/augmented_cache.py [--steps 20] [--batch 16] [--copies 2] [--backbone tiny-wavlm]
    python bench/augmented_cache.py --frontend whisper --backbone /work/shared/models/whisper-base
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def layersv(args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "layersv.cli", *args], check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def steps_per_s(run_dir: Path) -> float:
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    return int(rows[-1]["step"]) / float(rows[-1]["elapsed_s"])


def folder_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.glob("shard_*.npy"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--aug_prob", type=float, default=0.6)
    ap.add_argument("--kinds", default="sim_reverb,colored_noise,speaker_babble,telephone")
    ap.add_argument("--frontend", default="ssl")
    ap.add_argument("--backbone", default="tiny-wavlm")
    ap.add_argument("--speakers", type=int, default=40)
    a = ap.parse_args()
    from layersv.synthetic import generate_corpus

    tmp = Path(tempfile.mkdtemp(prefix="layersv-bench-augcache-"))
    data = generate_corpus(tmp / "data", num_speakers=a.speakers, utts_per_speaker=6, split=(a.speakers - 4, 2, 2),
                           seed=0, progress=False)
    rooms = ["--rir_bank_rooms", "50"]
    layersv(["prepare", "rir-bank", str(data), "--n_rooms", "50"])  # built once, outside both timings
    aug = ["--aug_prob", str(a.aug_prob), "--aug_kinds", a.kinds, *rooms]
    base = ["train", str(data), "SUPERB", "--no-progress", "--skiptest", "--frz_pretrain", "--frontend", a.frontend,
            "--backbone_cfg", a.backbone, "--nb_total_step", str(a.steps), "--nb_steps_eval", str(a.steps),
            "--batch_size", str(a.batch), "--train_max_sec", "2.0", "--cache_dir", str(tmp / "cache"), *aug]
    cache_cmd = ["cache", str(data), "--frontend", a.frontend, "--backbone_cfg", a.backbone, "--cache_dir",
                 str(tmp / "cache"), "--no-progress", "--augment_copies", str(a.copies),
                 "--aug", f"aug_kinds={a.kinds}", "--aug", "rir_bank_rooms=50"]
    if a.backbone.startswith("tiny-"):  # random tiny weights: the cache must come from the training run's encoder
        build_s = layersv([*base, "--cache", "--augment_copies", str(a.copies), "--nb_total_step", "1",
                           "--nb_steps_eval", "1", "--out", str(tmp / "build")])
        build_note = "cache build (clean + copies, inside a 1-step train run)"
    else:
        build_s = layersv(cache_cmd)
        build_note = "layersv cache --augment_copies"
    fly_wall = layersv([*base, "--out", str(tmp / "fly")])
    cache_wall = layersv([*base, "--cache", "--augment_copies", str(a.copies), "--out", str(tmp / "cached")])
    fly, cached = steps_per_s(tmp / "fly"), steps_per_s(tmp / "cached")

    heads = {d: json.loads((d / "manifest.json").read_text()) for d in (tmp / "cache").iterdir()}
    copies = [d for d, m in heads.items() if "augment" in m["header"]]
    clean = [d for d, m in heads.items() if "augment" not in m["header"]]
    per_copy = sum(folder_bytes(d) for d in copies) / max(len(copies), 1)
    m0 = heads[copies[0]]
    n_utts = sum(len(sh["keys"]) for sh in m0["shards"].values())
    frames = sum(sum(sh["frames"]) for sh in m0["shards"].values())
    train_rows = list(csv.DictReader(open(data / "train.csv")))
    audio_s = sum(float(r.get("duration_s") or 0) for r in train_rows)
    h = m0["header"]
    print(f"frozen {a.backbone} ({h['num_layers']} layers x {h['dim']}, {h['dtype']}) + SUPERB/ASTP, batch {a.batch} "
          f"x 2 s, {a.steps} steps, aug_prob {a.aug_prob} over {a.kinds}, K={a.copies}, {os.cpu_count()} CPUs")
    print(f"{'configuration':<34} {'wall [s]':>9} {'steps/s':>9} {'ratio':>7}")
    print(f"{'encoder on the fly + augmentation':<34} {fly_wall:>9.1f} {fly:>9.2f} {1.0:>6.2f}x")
    print(f"{'augmented cache':<34} {cache_wall:>9.1f} {cached:>9.2f} {cached / fly:>6.2f}x")
    gain = 1 / fly - 1 / cached
    print(f"{build_note}: {build_s:.1f} s (one-time); break-even after ~{build_s / gain:.0f} steps" if gain > 0
          else f"{build_note}: {build_s:.1f} s (one-time); no break-even: the cache is not faster here")
    print(f"disk per augmented copy: {per_copy / 2**20:.2f} MiB for {n_utts} training utterances, {frames} frames"
          + (f", {audio_s / 60:.1f} min of audio: {per_copy / 2**20 / (audio_s / 3600):.0f} MiB per audio hour"
             if audio_s else "")
          + f"; clean cache (train + valid) {sum(folder_bytes(d) for d in clean) / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
