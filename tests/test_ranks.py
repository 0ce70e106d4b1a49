"""`layersv cache` and `layersv eval` under torchrun (2 CPU processes, gloo) equal one process."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from layersv.cli import main

CACHE = ["--frontend", "fbank", "--backbone_cfg", "none", "--layers", "0", "--splits", "test", "--shard_utts", "4",
         "--no-progress"]


def torchrun(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "layersv.cli", *args], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def run_copy(src: Path, dst: Path, cache_dir: Path) -> Path:
    """The run without its embeddings, scores and reports; its feature cache in ``cache_dir``, no QMF stage.

    (QMF is left out: a Stats run's raw embedding norms are 1 ± 1 ulp, so its fitted calibration follows
    float rounding, which any change of batches moves, in one process as well.)"""
    from layersv.registries import registries
    from layersv.config import load_config, save_config

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("embeddings", "scores", "report*"))
    cfg = load_config(dst / "config.yaml", registries())
    cfg.frontend.cache_dir, cfg.eval.score_calibrate = str(cache_dir), False
    save_config(cfg, dst / "config.yaml")
    return dst


def scores(run: Path, stage: str) -> np.ndarray:
    return np.array([float(r["SCORE"]) for r in csv.DictReader(open(run / "scores" / f"test_{stage}.csv"))])


def test_cache_and_eval_on_two_ranks_equal_one_process(tiny_data, fbank_stats_run, tmp_path):
    # cache: the ranks encode the shards in turn; the manifest (keys, frames, sizes, sha256) and files are equal
    assert main(["cache", str(tiny_data), "--cache_dir", str(tmp_path / "c1"), *CACHE]) == 0
    torchrun("cache", str(tiny_data), "--cache_dir", str(tmp_path / "c2"), *CACHE)
    (m1,), (m2,) = (tmp_path / "c1").glob("*/manifest.json"), (tmp_path / "c2").glob("*/manifest.json")
    assert m1.parent.name == m2.parent.name
    a, b = json.loads(m1.read_text()), json.loads(m2.read_text())
    assert a == b and a["complete"] and len(a["shards"]) == 3  # 12 test utterances in shards of 4
    for sid in a["shards"]:
        assert (m1.parent / f"shard_{sid}.npy").read_bytes() == (m2.parent / f"shard_{sid}.npy").read_bytes()

    # eval: the test split embeds from the feature cache, the rest from audio; rank 0 scores and writes
    one = run_copy(fbank_stats_run, tmp_path / "one", tmp_path / "c1")
    two = run_copy(fbank_stats_run, tmp_path / "two", tmp_path / "c2")
    from layersv.runs.evaluate import evaluate_run

    ref = evaluate_run(one, progress=False, overrides={"score_normalize": True})
    torchrun("eval", str(two), "--no-progress", "--score_normalize")
    rep = json.loads((two / "report.json").read_text())
    assert set(rep["stages"]) == set(ref["stages"]) == {"cosine", "mean_sub", "asnorm"}
    for st in ref["stages"]:
        np.testing.assert_allclose(scores(two, st), scores(one, st), atol=1e-5)
        assert rep["stages"][st]["eer"] == pytest.approx(ref["stages"][st]["eer"])
    made = sorted(p.name for p in (two / "embeddings").iterdir())
    assert made == sorted(p.name for p in (one / "embeddings").iterdir())
    assert not any("test" in n for n in made) and any("valid" in n for n in made), made  # test: the cache


def test_cache_splits_all_and_trial_lists(tiny_data, tmp_path, capsys):
    base = ["cache", str(tiny_data), "--frontend", "fbank", "--backbone_cfg", "none", "--layers", "0",
            "--cache_dir", str(tmp_path), "--no-progress"]
    assert main([*base, "--splits", "all"]) == 0  # train (24) + valid (12) + test (12)
    assert "48 utterances" in capsys.readouterr().out
    assert main([*base, "--splits", "test"]) == 0  # a cache of more serves fewer
    assert main([*base, "--splits", "nope"]) == 2
    assert "unknown split 'nope'" in capsys.readouterr().err
