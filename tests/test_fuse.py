"""`layersv fuse`: logistic-regression fusion of evaluated runs, fitted on validation trials."""

from __future__ import annotations

import json

import numpy as np
import pytest

from layersv.cli import main
from layersv.data.dataset_folder import Trials
from layersv.report import read_scores, write_scores
from layersv.runs import fuse_runs
from layersv.runs.fuse import parse_system
from layersv.scoring.fusion import fit_fusion


def trials(n, seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(int)
    return Trials(labels, [f"e{seed}_{i}.wav" for i in range(n)], [f"t{seed}_{i}.wav" for i in range(n)])


def fake_run(root, name, shared_noise, own_scale, seed, stages=("cosine", "plda"), shuffle=False):
    """A run folder with report.json and validation/test scores: label + shared + own noise per stage."""
    run = root / name
    (run / "scores").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    valid_stages = {}
    for split, tr in (("valid", trials(3000, 1)), ("test", trials(3000, 2))):
        for k, st in enumerate(stages):
            s = 2.0 * tr.labels + shared_noise[split] + (own_scale + k) * rng.standard_normal(len(tr))
            t = tr
            if shuffle:  # another order, some trials with their sides swapped: aligned by the pair
                order = rng.permutation(len(tr))
                swap = rng.random(len(tr)) < 0.5
                e = [tr.test[i] if swap[j] else tr.enroll[i] for j, i in enumerate(order)]
                te = [tr.enroll[i] if swap[j] else tr.test[i] for j, i in enumerate(order)]
                t, s = Trials(tr.labels[order], e, te), s[order]
            write_scores(run / "scores" / f"{split}_{st}.csv", t, s)
            if split == "valid":
                from layersv import metrics
                valid_stages[st] = {"eer": metrics.eer(s, t.labels)}
    (run / "report.json").write_text(json.dumps({"dataset": "fake", "split": "test", "valid_stages": valid_stages}))
    return run


@pytest.fixture
def noise():
    rng = np.random.default_rng(0)
    return {sp: 0.3 * rng.standard_normal(3000) for sp in ("valid", "test")}


def test_fusion_of_two_systems_beats_each_and_is_calibrated(tmp_path, noise):
    a = fake_run(tmp_path, "a", noise, 1.0, seed=10)
    b = fake_run(tmp_path, "b", noise, 1.2, seed=11, shuffle=True)
    rep = fuse_runs([str(a), str(b)], tmp_path / "fused")
    assert rep["fusion"]["stages"] == ["cosine", "cosine"]  # auto: each run's best stage on validation
    eer = {k: v["eer"] for k, v in rep["stages"].items()}
    assert eer["fusion"] < min(eer["a:cosine"], eer["b:cosine"]) - 1.0  # independent errors: fusion gains
    assert all(w > 0 for w in rep["fusion"]["weights"].values())
    assert rep["stages"]["fusion"]["cllr"] < 0.6  # calibrated LLRs (a useless system has Cllr 1)
    t, s = read_scores(tmp_path / "fused" / "scores" / "test_fusion.csv")
    assert len(s) == rep["trials"] == 3000 and np.isfinite(s).all()
    assert json.loads((tmp_path / "fused" / "fusion.json").read_text())["names"] == ["a:cosine", "b:cosine"]
    assert (tmp_path / "fused" / "det.png").is_file() and (tmp_path / "fused" / "report.md").is_file()
    rep2 = fuse_runs([f"{a}:plda", str(b)], tmp_path / "fused2")  # an explicit stage
    assert rep2["fusion"]["names"] == ["a:plda", "b:cosine"]


def test_useless_system_gets_a_small_weight(tmp_path, noise):
    a = fake_run(tmp_path, "a", noise, 1.0, seed=10)
    junk = fake_run(tmp_path, "junk", {sp: np.zeros(3000) for sp in noise}, 50.0, seed=12)
    rep = fuse_runs([str(a), str(junk)], tmp_path / "f")
    w = rep["fusion"]["weights"]
    assert abs(w["junk:cosine"]) * 50.0 < 0.1 * w["a:cosine"] * 1.0  # its scores' spread times its weight
    assert rep["stages"]["fusion"]["eer"] < rep["stages"]["a:cosine"]["eer"] + 0.5


def test_fuse_errors(tmp_path, noise, capsys):
    a = fake_run(tmp_path, "a", noise, 1.0, seed=10)
    assert main(["fuse", str(a), "--out", str(tmp_path / "o")]) == 2  # one run
    assert "two or more" in capsys.readouterr().err
    assert main(["fuse", str(a), str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "layersv eval" in capsys.readouterr().err
    assert main(["fuse", f"{a}:asnorm", str(a), "--out", str(tmp_path / "o")]) == 2
    assert "asnorm" in capsys.readouterr().err
    other = tmp_path / "other"
    (other / "scores").mkdir(parents=True)
    for split, tr in (("valid", trials(3000, 7)), ("test", trials(3000, 2))):
        write_scores(other / "scores" / f"{split}_cosine.csv", tr, np.zeros(3000))
    (other / "report.json").write_text(json.dumps({"valid_stages": {"cosine": {"eer": 50.0}}}))
    assert main(["fuse", str(a), str(other), "--out", str(tmp_path / "o")]) == 2  # other validation trials
    assert "not scored" in capsys.readouterr().err
    with pytest.raises(ValueError, match="differ"):
        fit_fusion(np.zeros((4, 2)), np.array([0, 1, 0, 1]), ["x", "x"])
    assert parse_system("runs/a:plda") == (tmp_path.__class__("runs/a"), "plda")
    assert parse_system("runs/a") == (tmp_path.__class__("runs/a"), "auto")


def test_cli_fuse_two_trained_runs(tiny_data, tmp_path, capsys):
    from conftest import tiny_config

    from layersv.runs import fit

    runs = [fit(tiny_config(tiny_data, seed=s), tmp_path / f"r{s}", progress=False) for s in (1, 2)]
    assert main(["fuse", *map(str, runs), "--out", str(tmp_path / "fused")]) == 0
    out = capsys.readouterr().out
    assert "fusion" in out and "weights" in out
    rep = json.loads((tmp_path / "fused" / "report.json").read_text())
    assert rep["trials"] == json.loads((runs[0] / "report.json").read_text())["trials"]
    assert {"fusion", "cllr"} <= set(rep["stages"]) | set(rep["stages"]["fusion"])
