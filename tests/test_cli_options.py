"""Options where users expect them (issue 13): ``eval --out/--workers``, ``cache --frontend auto``, and
config keys or flags that nothing would read are errors, not silent no-ops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_config

from layersv.backends import BACKENDS, is_trainable
from layersv.backends.stats import Stats
from layersv.cli import main
from layersv.config import ConfigError
from layersv.runs import assemble_config, fit

REPORT_FILES = ("report.json", "report.md", "det.png")


def _own_report(run: Path) -> dict:
    return {f: (run / f).read_bytes() for f in REPORT_FILES + ("calibration.json", "scoring.npz")}


def test_eval_out_is_the_report_folder_of_a_cross_dataset_evaluation(fbank_stats_run, tiny_data, tmp_path, capsys):
    run, out = fbank_stats_run, tmp_path / "cross"
    own = _own_report(run)
    assert main(["eval", str(run), "--eval_data", str(tiny_data), "--workers", "0", "--no-progress"]) == 0
    beside = json.loads((run / "report_synthetic_test.json").read_text())  # the default: beside the run's report
    assert main(["eval", str(run), "--eval_data", str(tiny_data), "--out", str(out), "--workers", "1",
                 "--no-progress"]) == 0
    assert f"written: {out}/report.json" in capsys.readouterr().out
    assert all((out / f).is_file() for f in REPORT_FILES)
    assert (out / "scores" / "synthetic_test_cosine.csv").is_file()
    rep = json.loads((out / "report.json").read_text())
    assert rep["stages"] == beside["stages"] and rep["dataset"] == "synthetic"  # --workers: same scores
    assert _own_report(run) == own  # the run's own report and scoring state are never overwritten


def test_eval_out_with_another_trial_list(fbank_stats_run, tmp_path):
    out = tmp_path / "named"
    assert main(["eval", str(fbank_stats_run), "--trials", "valid", "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "report.json").read_text())["split"] == "valid"


def test_eval_out_alone_is_an_error(fbank_stats_run, tmp_path, capsys):
    assert main(["eval", str(fbank_stats_run), "--out", str(tmp_path / "x")]) == 2
    assert "--out DIR is the report folder of a cross-dataset evaluation" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit):
        main(["eval", str(fbank_stats_run), "--workers", "two"])


def test_train_time_eval_data_is_an_error(tiny_data, tmp_path, capsys):
    with pytest.raises(ConfigError, match="layersv eval RUN --eval_data"):
        assemble_config(str(tiny_data), "SUPERB", "quickstart", {"eval_data": str(tiny_data)})
    assert main(["train", str(tiny_data), "SUPERB", "--eval_data", str(tiny_data), "--out", str(tmp_path / "r")]) == 2
    assert "data.eval_data" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_amp_on_a_cpu_is_an_error_naming_the_alternative(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="--amp none"):
        assemble_config(str(tiny_data), "SUPERB", "quickstart", {"amp": "bf16", "device": "cpu"})
    cfg = tiny_config(tiny_data)
    cfg.train.amp = "fp16"  # a config built in code: caught when the run starts, before its folder is made
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        fit(cfg, tmp_path / "amp", progress=False)
    assert not (tmp_path / "amp").exists()
    assert assemble_config(str(tiny_data), "SUPERB", "quickstart", {"amp": "bf16", "device": "cuda"})


def test_cosine_reads_pct_start_and_step_free_schedulers_refuse_it(tiny_data):
    cfg = assemble_config(str(tiny_data), "SUPERB", "quickstart", {"scheduler": "cosine", "pct_start": "0.2"})
    assert cfg.train.pct_start == 0.2  # the cosine warm-up fraction
    with pytest.raises(ConfigError, match="pct_start"):
        assemble_config(str(tiny_data), "SUPERB", "quickstart", {"scheduler": "tristage", "pct_start": "0.2"})


def test_cache_frontend_auto_detects_whisper_like_probe(tiny_data, monkeypatch):
    import layersv.cli.cache as cli_cache

    seen = []

    class Done(Exception):
        pass

    def fake_build(data, cfg, *a, **k):
        seen.append(cfg.frontend)
        raise Done

    monkeypatch.setattr(cli_cache, "build_dataset_cache", fake_build)
    for backbone, extra in (("openai/whisper-tiny", []), ("tiny-wav2vec2", []),
                            ("tiny-wav2vec2", ["--frontend", "fbank"])):
        with pytest.raises(Done):
            main(["cache", str(tiny_data), "--backbone_cfg", backbone, *extra])
    assert seen == ["whisper", "ssl", "fbank"]


def test_the_fitter_is_chosen_by_the_trainable_attribute(monkeypatch):
    class FittedStats(Stats):
        pass

    monkeypatch.setitem(BACKENDS, "FittedStats", FittedStats)
    assert not is_trainable("Stats") and not is_trainable("FittedStats")
    assert is_trainable("SUPERB") and is_trainable("ECAPA-TDNN")
