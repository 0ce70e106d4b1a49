"""Evaluation stages on a trained run, embedding cache, embed/verify CLI, long files, ONNX parity."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

import layersv
from layersv.cli import main
from layersv.runs.evaluate import evaluate_run
from layersv.embed import embed_file, embed_file_full, windows
from layersv.runs import verify
from layersv.runs import fit

from conftest import tiny_config


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory):
    cfg = tiny_config(tiny_data, score_normalize=True, score_calibrate=True, asnorm_topk=3)
    return fit(cfg, tmp_path_factory.mktemp("inf") / "run", progress=False)


def _wav(tiny_data, spk, i):
    return str(tiny_data / "wav" / spk / f"{spk}_{i:03d}.wav")


def test_training_evaluation_has_every_stage_and_operating_points(run):
    rep = json.loads((run / "report.json").read_text())
    assert list(rep["stages"]) == ["cosine", "mean_sub", "asnorm", "qmf"]
    assert {"cllr", "act_dcf_0.01", "act_dcf_0.05"} <= set(rep["stages"]["qmf"])
    ops = rep["operating_points"]
    assert ops["final_stage"] == "qmf" and set(ops["eer_valid"]) == set(rep["stages"])
    assert ops["bayes_llr"]["0.01"] == pytest.approx(np.log(99))
    cal = json.loads((run / "calibration.json").read_text())
    assert cal["calibrator"]["method"] == "qmf-logreg" and cal["thresholds"] == {
        k: v for k, v in ops.items() if k in ("eer_valid", "bayes_llr")}
    for f in ("score_hist.png", "det.png", "scoring.npz", "scores/test_qmf.csv"):
        assert (run / f).is_file(), f


def test_embedding_cache_is_reused_and_invalidated(run):
    cache = run / "embeddings" / "synthetic_test.npz"
    before = cache.stat().st_mtime_ns
    evaluate_run(run, progress=False, overrides={"score_normalize": True, "score_calibrate": True,
                                                 "asnorm_topk": 3})
    assert cache.stat().st_mtime_ns == before  # reused
    from layersv.model import save_model

    model = layersv.load_model(run)
    with torch.no_grad():
        next(model.backend.parameters()).add_(0.01)
    save_model(model, run / "model_best")  # "a new best model": other weights, other fingerprint
    rep = evaluate_run(run, progress=False, overrides={"score_normalize": True, "score_calibrate": True,
                                                       "asnorm_topk": 3})
    assert cache.stat().st_mtime_ns != before
    assert "qmf" in rep["stages"]


def test_crops_and_cross_dataset_eval(run, tiny_data):
    own = {f: (run / f).read_bytes() for f in ("report.json", "calibration.json", "scoring.npz")}
    rep = evaluate_run(run, eval_data=str(tiny_data), progress=False,
                       overrides={"n_crops": 2, "crop_sec": 0.5, "score_normalize": False})
    assert list(rep["stages"]) == ["cosine", "mean_sub", "qmf"]  # the run's config calibrates
    assert (run / "embeddings" / "synthetic_test_crops2x0.5s.npz").is_file()
    assert (run / "scores" / "synthetic_test_qmf.csv").is_file()  # cross-dataset tag
    # a cross-dataset evaluation writes beside the run's report and never replaces its state
    assert json.loads((run / "report_synthetic_test.json").read_text())["stages"] == rep["stages"]
    assert all((run / f).read_bytes() == b for f, b in own.items())
    # restore the full-utterance state for the verify tests
    evaluate_run(run, progress=False, overrides={"score_normalize": True, "score_calibrate": True, "asnorm_topk": 3})


def test_verify_cli_and_errors(run, tiny_data, tmp_path, capsys):
    a, b = _wav(tiny_data, "spk009", 1), _wav(tiny_data, "spk009", 2)
    assert main(["verify", str(run), a, b]) == 0
    out = capsys.readouterr().out
    assert "LLR:" in out and "decision:" in out and "P(same speaker)" in out
    r1, r2 = verify(run, a, b), verify(run, b, a)
    assert r1["calibrated"] and r1["score"] == pytest.approx(r2["score"], abs=1e-5)  # symmetric
    assert r1["accept"] == (r1["score"] >= r1["threshold"])
    assert main(["verify", str(run), a, str(tmp_path / "missing.wav")]) == 2
    assert "file not found" in capsys.readouterr().err
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    assert main(["verify", str(run), a, str(tmp_path / "bad.wav")]) == 2
    assert "bad.wav" in capsys.readouterr().err
    sf.write(tmp_path / "short.wav", np.full(800, 0.1, dtype=np.float32), 16000)
    assert main(["verify", str(run), a, str(tmp_path / "short.wav")]) == 2
    assert "too short" in capsys.readouterr().err


def test_verify_without_calibrator_says_so(run, tiny_data, tmp_path, capsys):
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("model_best.json", "model_best.safetensors"):
        shutil.copy(run / f, bare / f)
    r = verify(bare, _wav(tiny_data, "spk009", 1), _wav(tiny_data, "spk010", 1))
    assert r["stage"] == "cosine" and not r["calibrated"] and r["accept"] is None
    assert main(["verify", str(bare), _wav(tiny_data, "spk009", 1), _wav(tiny_data, "spk010", 1)]) == 0
    assert "no calibrator" in capsys.readouterr().out


def test_embed_file_long_files_and_embed_cli(run, tiny_data, tmp_path):
    model = layersv.load_model(run)
    wav = np.random.default_rng(0).standard_normal(40000).astype(np.float32) * 0.1  # 2.5 s
    sf.write(tmp_path / "long.wav", wav, 16000, subtype="FLOAT")  # exact samples, no 16-bit rounding
    # short enough: the whole file, as model.embed does
    np.testing.assert_allclose(embed_file(model, tmp_path / "long.wav"), model.embed(wav), atol=1e-5)
    # long: 1 s windows, hop 0.8 s, last aligned to the end; mean of unit embeddings
    starts = windows(40000, 16000, 12800)
    assert starts == [0, 12800, 24000]
    e = np.stack([model.embed(wav[s : s + 16000]) for s in starts]).mean(0)
    got = embed_file_full(model, tmp_path / "long.wav", chunk_sec=1.0, overlap_sec=0.2).embedding
    np.testing.assert_allclose(got, e / np.linalg.norm(e), atol=1e-5)

    lst = tmp_path / "files.txt"
    lst.write_text(f"{_wav(tiny_data, 'spk009', 1)}\n# comment\n{_wav(tiny_data, 'spk010', 2)}\n")
    out = tmp_path / "emb.npz"
    assert main(["embed", str(run), str(lst), str(tmp_path / "long.wav"), "-o", str(out)]) == 0
    z = np.load(out)
    assert z["matrix"].shape == (3, model.embedding_dim) and z["durations"][2] == pytest.approx(2.5)
    np.testing.assert_allclose(np.linalg.norm(z["matrix"], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("part", ["backend", "full"])
def test_onnx_parity(run, tmp_path, part):
    pytest.importorskip("onnxruntime")
    from layersv.export import check_parity, export_onnx

    model = layersv.load_model(run)
    path = export_onnx(model, tmp_path / f"{part}.onnx", part)
    assert check_parity(model, path, part, batch=3, seconds=2.0) < 1e-4
