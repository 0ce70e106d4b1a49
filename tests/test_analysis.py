"""Layer probe, the training-free Stats backend, `layersv layers`, and a reduced real-speech recipe."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn as nn

from conftest import SHARED, tiny_config
from layersv.backends import BACKENDS, build_backend
from layersv.backends.layers import lengths_to_mask
from layersv.cli import main
from layersv.whitening import fit_whitening, lda_possible

ROOT = Path(__file__).resolve().parents[1]
SHARED_DIRS = [SHARED, Path("/work/shared")]


def _shared() -> Path | None:
    for d in SHARED_DIRS:
        if (d / "data/librispeech-train251/metadata.csv").is_file() and (d / "models/whisper-base").is_dir():
            return d
    return None


def stats_config(data: Path, **ov):
    from layersv.runs.assemble import assemble_config

    ov = {"backbone_cfg": "tiny-wavlm", **{k: str(v) for k, v in ov.items()}}
    return assemble_config(str(data), "Stats", None, ov)


# ----------------------------------------------------------------------------- whitening


def test_pca_whitening_gives_identity_covariance_on_train():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)) @ rng.normal(size=(8, 8)) + 3.0
    w = fit_whitening(x, None)
    y = w.apply(x)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(np.cov(y.T), np.eye(8), atol=1e-8)
    assert w.kind == "pca"


def test_lda_only_with_several_utterances_per_speaker():
    rng = np.random.default_rng(1)
    spk = [f"s{i}" for i in range(12) for _ in range(3)]
    centres = {s: rng.normal(size=5) * 3 for s in set(spk)}
    x = np.stack([centres[s] + rng.normal(size=5) * 0.1 for s in spk])
    w = fit_whitening(x, spk)
    assert w.kind == "pca+lda" and w.transform.shape == (5, 5)
    assert not lda_possible([f"s{i}" for i in range(12)])  # one utterance each: PCA only
    assert not lda_possible(spk[:18])  # 6 speakers: too few for LDA
    assert fit_whitening(x[::3], spk[::3]).kind == "pca"


# ----------------------------------------------------------------------------- Stats backend


@pytest.fixture(scope="module")
def stats_run(tiny_data, tmp_path_factory):
    from layersv.runs import fit as fit_stats

    run = tmp_path_factory.mktemp("stats_run")
    fit_stats(stats_config(tiny_data, layers="1,2"), run, progress=False)
    return run


def test_stats_run_folder(stats_run):
    for f in ("config.yaml", "training.log", "metrics.csv", "model_best.json", "model_best.safetensors",
              "model_last.json", "model_last.safetensors", "report.json", "report.md", "det.png", "layer_selection.json"):
        assert (stats_run / f).is_file(), f
    rows = (stats_run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 2  # header + one row: no gradient training
    rep = json.loads((stats_run / "report.json").read_text())
    assert {"cosine", "mean_sub"} <= set(rep["stages"]) and rep["trials"] == 36
    sel = json.loads((stats_run / "layer_selection.json").read_text())
    assert sel["layers"] == [1, 2] and sel["mode"] == "given"


def test_stats_embeddings_normalised_and_eval_reproduces_report(stats_run, tiny_data):
    from layersv.data.audio import load_audio
    from layersv.model import load_model

    model = load_model(stats_run)
    assert model.backend_name == "Stats" and model.frontend.layer_ids == [1, 2]
    assert model.backend.embedding_dim == model.backend.transform.shape[1] < model.backend.in_features
    wavs = sorted((tiny_data).rglob("*.wav"))[:3]
    e = np.stack([model.embed(load_audio(str(w), 16000)) for w in wavs])
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    # eval works on the run folder like for any trained model, and reproduces the fit-time report
    from layersv.runs.evaluate import evaluate_run

    before = json.loads((stats_run / "report.json").read_text())["stages"]["cosine"]["eer"]
    assert evaluate_run(stats_run, progress=False)["stages"]["cosine"]["eer"] == pytest.approx(before)


def test_stats_whitening_fitted_on_train_only(stats_run, tiny_data, tmp_path):
    """Replacing every validation and test file by other audio leaves the transform unchanged."""
    from layersv.data.dataset_folder import open_dataset
    from layersv.model import read_checkpoint
    from layersv.runs import fit as fit_stats

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns(".layersv_cache"))
    ds = open_dataset(data)
    rng = np.random.default_rng(5)
    eval_files = set(ds.trials("valid").utterances) | set(ds.trials("test").utterances)
    assert eval_files and not eval_files & {p for p, _ in ds.train}
    for rel in eval_files:
        sf.write(ds.abspath(rel), (rng.normal(size=16000) * 0.1).astype(np.float32), 16000)
    run = tmp_path / "run"
    fit_stats(stats_config(data, layers="1,2", skiptest="true"), run, progress=False)
    a, b = read_checkpoint(stats_run)["state_dict"], read_checkpoint(run)["state_dict"]
    for k in ("backend.mean", "backend.transform"):
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_train_cli_routes_stats_with_auto_layers(tiny_data, tmp_path):
    torch.manual_seed(0)
    rc = main(["train", str(tiny_data), "Stats", "--backbone_cfg", "tiny-wavlm", "--skiptest", "true",
               "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 0
    sel = json.loads((tmp_path / "run/layer_selection.json").read_text())
    assert sel["mode"] == "auto" and len(sel["probe"]) == 5 and 1 <= len(sel["layers"]) <= 4
    best = min(r["valid_eer"] for r in sel["probe"])
    first = sel["steps"][0]
    assert len(first["layers"]) == 1 and first["kept"] and first["layers"][0] in sel["layers"]
    assert next(r for r in sel["probe"] if r["layer"] == first["layers"][0])["valid_eer"] == best


# ----------------------------------------------------------------------------- probe


def test_probe_writes_outputs_and_beats_chance(tiny_data, tmp_path):
    torch.manual_seed(0)  # the tiny encoder is random: fix it
    out = tmp_path / "probe"
    assert main(["probe", str(tiny_data), "--backbone_cfg", "tiny-wavlm", "--out", str(out), "--no-progress"]) == 0
    for f in ("probe.json", "probe.md", "probe.png"):
        assert (out / f).stat().st_size > 0
    res = json.loads((out / "probe.json").read_text())
    assert [r["layer"] for r in res["rows"]] == list(range(5)) and res["selected_on"] == "valid"
    best = next(r for r in res["rows"] if r["layer"] == res["best_layer"])
    assert best["valid"]["eer"] == min(r["valid"]["eer"] for r in res["rows"])
    ties = [r for r in res["rows"] if r["valid"]["eer"] == best["valid"]["eer"]]
    assert best["valid"]["min_dcf_0.01"] == min(r["valid"]["min_dcf_0.01"] for r in ties)
    # 18 target / 18 non-target trials: chance is 50 %; measured 33.3 % (test) with this seed
    assert best["test"]["eer"] < 45.0
    assert "| hidden state |" in (out / "probe.md").read_text()


def test_probe_ranks_the_layer_that_carries_the_speaker_first():
    """Statistics where only layer 2 holds a speaker component: it must win, chance elsewhere."""
    from layersv.data.dataset_folder import Trials
    from layersv.analysis.probe import best_layers, score_layers

    rng = np.random.default_rng(0)
    spk = [f"s{i}" for i in range(40) for _ in range(2)]  # 20 train + 20 eval speakers, 2 utts each
    keys = [f"u{i}" for i in range(len(spk))]
    centre = {s: rng.normal(size=16) for s in sorted(set(spk))}
    stats = rng.normal(size=(len(keys), 4, 16))
    stats[:, 2] += 1.5 * np.stack([centre[s] for s in spk])
    index = {k: i for i, k in enumerate(keys)}
    train = list(zip(keys[:40], spk[:40]))
    ev = list(zip(keys[40:], spk[40:]))
    pairs = [(a, b) for i, a in enumerate(ev) for b in ev[i + 1:]]
    t = Trials(np.array([int(a[1] == b[1]) for a, b in pairs]), [a[0] for a, _ in pairs], [b[0] for _, b in pairs])
    rows = score_layers(stats.astype(np.float32), index, train, {"valid": t})
    assert best_layers(rows, 1)[0] == 2 and rows[2]["whitening"] == "pca+lda"
    eers = [r["valid"]["eer"] for r in rows]  # measured: 6.8 vs 45, 45, 53
    assert eers[2] < 15.0, eers
    assert all(eers[i] > 25.0 for i in (0, 1, 3)), eers


# ----------------------------------------------------------------------------- layers


class _FrameAttentionBackend(nn.Module):
    """A frame-adaptive test backend: softmax attention over layers per frame, (B, T, L)."""

    def __init__(self, in_layers: int, in_dim: int, embedding_dim: int = 8):
        super().__init__()
        self.score = nn.Linear(in_dim, 1)
        self.proj = nn.Linear(in_dim, embedding_dim)
        self.embedding_dim = embedding_dim

    def layer_attention(self, hidden, lengths):
        return torch.softmax(self.score(hidden).squeeze(-1), dim=1).transpose(1, 2)  # (B, T, L)

    def forward(self, hidden, lengths):
        a = self.layer_attention(hidden, lengths)  # (B, T, L)
        x = torch.einsum("btl,bltd->btd", a, hidden)
        m = lengths_to_mask(lengths, x.shape[1])[..., None].float()
        return self.proj((x * m).sum(1) / m.sum(1))


def _saved_run(data: Path, name: str, run: Path) -> Path:
    from layersv.config import save_config
    from layersv.model import build_model, save_model

    cfg = tiny_config(data)
    cfg.model.model = name
    if name != "SUPERB":
        from layersv.config import signature_defaults

        ok = signature_defaults(BACKENDS[name])
        cfg.model.args = {k: v for k, v in cfg.model.args.items() if k in ok}
    run.mkdir(parents=True)
    save_config(cfg, run / "config.yaml")
    model = build_model(cfg)
    with torch.no_grad():
        for n, p in model.backend.named_parameters():
            if "weights" in n:
                p.copy_(torch.linspace(-1, 1, p.numel()).reshape(p.shape))
    save_model(model, run / "model_best")
    return run


@pytest.mark.parametrize("name", sorted(n for n, c in BACKENDS.items() if hasattr(c, "layer_weights")))
def test_layers_for_every_backend_with_layer_weights(name, tiny_data, tmp_path):
    run = _saved_run(tiny_data, name, tmp_path / "run")
    assert main(["layers", str(run)]) == 0
    res = json.loads((run / "layers.json").read_text())
    from layersv.model import load_model

    expect = load_model(run).backend.layer_weights().numpy()
    np.testing.assert_allclose(res["weights"], expect, rtol=1e-6)
    assert res["source"] == "layer_weights" and res["ranking"][0] == res["layer_ids"][int(np.argmax(expect))]
    assert (run / "layers.png").stat().st_size > 0


def test_layers_frame_adaptive_attention_and_heat_map(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setitem(BACKENDS, "FrameAttn", _FrameAttentionBackend)
    run = _saved_run(tiny_data, "FrameAttn", tmp_path / "run")
    from layersv.analysis.layer_usage import layer_usage

    res = layer_usage(run, max_utts=4)
    assert res["source"] == "layer_attention" and res["utterances"] == 4
    assert np.isclose(sum(res["weights"]), 1.0, atol=1e-5) and len(res["weights"]) == 5
    assert (run / "layers_time.png").stat().st_size > 0


def test_layers_explains_backends_without_layer_weights(stats_run):
    with pytest.raises(ValueError, match="learns no layer weights"):
        from layersv.analysis.layer_usage import layer_usage

        layer_usage(stats_run)


def test_stats_backend_padded_equals_single():
    be = build_backend("Stats", in_layers=2, in_dim=4).eval()
    be.fit_whitening(np.random.default_rng(0).normal(size=(30, 16)), [f"s{i}" for i in range(30)])
    h, n = torch.randn(2, 2, 9, 4), torch.tensor([9, 5])
    h[1, :, 5:] = 1e3
    out = be(h, n)
    torch.testing.assert_close(out[1:], be(h[1:, :, :5], n[1:]), rtol=1e-4, atol=1e-4)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-5)


# ----------------------------------------------------------------------------- real speech (reduced recipe)


@pytest.mark.skipif(_shared() is None, reason="needs /work/shared (librispeech-train251, whisper-base)")
def test_reduced_real_recipe(tmp_path):
    """16/4/4 speakers, 2 s clips, whisper-base hidden states 1,2: dataset → probe → Stats → eval."""
    shared = _shared()
    data = tmp_path / "ls"
    subprocess.run([sys.executable, str(ROOT / "recipes/folder/make_librispeech251.py"),
                    str(shared / "data/librispeech-train251"), str(data), "--split", "16,4,4",
                    "--part_sec", "2", "--train_max_sec", "2"], check=True, capture_output=True)
    wb = str(shared / "models/whisper-base")
    torch.set_num_threads(2)
    from layersv.analysis.probe import probe_dataset

    res = probe_dataset(str(data), wb, tmp_path / "probe", layers=[1, 2], progress=False)
    assert [r["layer"] for r in res["rows"]] == [1, 2] and res["trials"]["valid"] == {"trials": 28, "targets": 4}
    assert main(["train", str(data), "Stats", "--frontend", "whisper", "--backbone_cfg", wb, "--layers", "1,2",
                 "--mean_sub_utts", "4", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    rep = json.loads((tmp_path / "run/report.json").read_text())
    assert rep["trials"] == 28 and rep["targets"] == 4
    # measured: cosine and mean_sub EER 25.0 % (4 targets: steps of 25 points; chance is 50 %)
    assert rep["stages"]["cosine"]["eer"] < 50.0 and rep["stages"]["mean_sub"]["eer"] < 50.0, rep["stages"]
    import csv

    rows = list(csv.DictReader(open(tmp_path / "run/scores/test_cosine.csv")))
    tgt = [float(r["SCORE"]) for r in rows if r["LABEL"] == "1"]
    non = [float(r["SCORE"]) for r in rows if r["LABEL"] == "0"]
    assert len(tgt) == 4 and np.mean(tgt) > np.mean(non)  # same-speaker pairs score higher on average
