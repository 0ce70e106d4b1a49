"""End to end: train → select on validation → evaluate → run folder; resume; eval CLI; quickstart --fast."""

import csv
import json

import pytest

import layersv
from layersv.cli import main
from layersv.data.dataset_folder import open_dataset
from layersv.report import read_scores
from layersv.runs import fit

from conftest import tiny_config

RUN_FILES = ["config.yaml", "training.log", "metrics.csv", "model_best.json", "model_best.safetensors",
             "model_best.head.safetensors", "model_last.json", "model_last.safetensors", "model_last.pt", "report.json",
             "report.md", "det.png"]


def test_train_writes_a_complete_run_folder(tiny_data, tmp_path):
    run = fit(tiny_config(tiny_data), tmp_path / "run", progress=False)
    for f in RUN_FILES:
        assert (run / f).is_file(), f
    rep = json.loads((run / "report.json").read_text())
    assert rep["trials"] > 0 and rep["targets"] > 0
    assert set(rep["stages"]) == {"cosine", "mean_sub", "qmf"}  # the quickstart config calibrates
    assert {"eer", "min_dcf_0.01", "min_dcf_0.05"} <= set(rep["stages"]["cosine"])
    assert {"cllr", "act_dcf_0.01"} <= set(rep["stages"]["qmf"]) and "cllr" not in rep["stages"]["cosine"]
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert (run / "scores" / "test_cosine.csv").is_file()
    for st in ("cosine", "mean_sub", "qmf"):  # the validation scores, what `layersv fuse` fits on
        assert len(read_scores(run / "scores" / f"valid_{st}.csv")[1]) == len(open_dataset(tiny_data).trials("valid"))
    model = layersv.load_model(run)
    assert model.embed([0.0] * 8000 + [0.1] * 8000).shape == (32,)


def test_resume_gives_the_same_metrics(tiny_data, tmp_path, monkeypatch):
    import layersv.train as tr

    cfg = tiny_config(tiny_data, nb_total_step=6)
    full = fit(cfg, tmp_path / "full", progress=False)

    real = tr.train_one_cycle

    def killed_in_cycle_3(model, head, opt, sched, crops, cfg, state, *a, **k):
        if state.cycle == 2:
            raise KeyboardInterrupt  # the process dies in the middle of cycle 3
        return real(model, head, opt, sched, crops, cfg, state, *a, **k)

    monkeypatch.setattr(tr, "train_one_cycle", killed_in_cycle_3)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, tmp_path / "part", progress=False)
    assert len(_metric_cols(tmp_path / "part")) == 2 and not (tmp_path / "part" / "report.json").exists()
    monkeypatch.setattr(tr, "train_one_cycle", real)
    assert main(["train", "--resume", str(tmp_path / "part"), "--no-progress"]) == 0
    assert _metric_cols(tmp_path / "part") == _metric_cols(full)
    rep_full = json.loads((full / "report.json").read_text())["stages"]
    rep_part = json.loads((tmp_path / "part" / "report.json").read_text())["stages"]
    assert rep_full == rep_part


def _metric_cols(run):
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    return [(r["step"], r["train_loss"], r["valid_eer"]) for r in rows]


def test_cli_train_eval_and_errors(tiny_data, tmp_path, capsys):
    out = tmp_path / "cli_run"
    rc = main(["train", str(tiny_data), "SUPERB", "--config", "quickstart", "--out", str(out), "--no-progress",
               "--nb_total_step", "2", "--nb_steps_eval", "2", "--batch_size", "4", "--train_max_sec", "1.0",
               "--embedding_dim", "16", "--hidden_dim", "16", "--description", "cli test", "--seed", "3"])
    assert rc == 0 and (out / "report.json").is_file()
    assert main(["eval", str(out), "--no-progress"]) == 0
    assert "EER" in capsys.readouterr().out
    assert main(["train", str(tiny_data), "SUPERB", "--batch_sise", "3"]) == 2
    assert "batch_size" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "nowhere"), "SUPERB"]) == 2
    assert main(["train", str(tiny_data), "SUPERB", "--out", str(out)]) == 2  # would overwrite a run
    assert main(["eval", str(tmp_path)]) == 2


@pytest.mark.slow
def test_quickstart_fast_learns(tmp_path):
    from layersv.quickstart import quickstart

    rep = quickstart(tmp_path / "qs", fast=True, progress=False)
    run = tmp_path / "qs" / "run"
    for f in RUN_FILES:
        assert (run / f).is_file(), f
    assert rep["stages"]["cosine"]["eer"] < 30.0  # chance is 50 %
