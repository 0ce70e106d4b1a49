"""`layersv layers`: layer × time heat maps of frame-level layer attention; MHFA key and value weights."""

import json

import numpy as np
import pytest
import torch
from test_analysis import _saved_run

from layersv.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", ["UniPool", "LAP"])
def test_frame_level_attention_gives_layer_by_time_heat_maps(name, tiny_data, tmp_path):
    from layersv.data.audio import audio_info
    from layersv.data.dataset_folder import open_dataset
    from layersv.model import load_model

    run = _saved_run(tiny_data, name, tmp_path / "run")
    assert main(["layers", str(run), "--max_utts", "3", "--heat_utts", "2"]) == 0
    res = json.loads((run / "layers.json").read_text())
    assert (run / "layers_time.png").stat().st_size > 0 and res["heat_map"].endswith("layers_time.png")
    ds, fr = open_dataset(tiny_data, need_train=False), load_model(run).frontend
    L = len(res["layer_ids"])
    for m in res["heat_maps"].values():
        assert len(m["utterances"]) == 2 and np.asarray(m["mean_relative"]).shape == (L, m["bins"])
        for u in m["utterances"]:
            a = np.asarray(u["map"])
            n = int(fr.frame_lengths(torch.tensor([round(audio_info(ds.abspath(u["key"])).duration * 16000)]))[0])
            assert a.shape == (L, u["frames"]) == (L, n), (a.shape, n)  # layers × frames
            assert np.all((a >= 0) & (a <= 1))  # sigmoid attention
    if name == "UniPool":  # hidden state 0 is excluded: its row is 0
        assert all(np.allclose(np.asarray(u["map"])[0], 0) for u in res["heat_maps"]["head.lap"]["utterances"])


@pytest.mark.parametrize("aggregation", ["superb", "lap"])
def test_mhfa_reports_key_and_value_weights(aggregation, tiny_data, tmp_path):
    from layersv.config import load_config, save_config
    from layersv.registries import registries
    from layersv.analysis.layer_usage import layer_usage
    from layersv.model import build_model, load_model, save_model

    run = _saved_run(tiny_data, "MHFA", tmp_path / "run")
    cfg = load_config(run / "config.yaml", registries())
    cfg.model.args.update(aggregation=aggregation, heads=4, compression=8, lap_dim=16, lap_heads=4)
    save_config(cfg, run / "config.yaml")
    model = build_model(cfg)
    if aggregation == "superb":  # distinct key and value weights
        with torch.no_grad():
            w = model.backend.key_aggregate.sum.weights
            w.copy_(torch.linspace(1, -1, w.numel()))
            model.backend.value_aggregate.sum.weights.copy_(torch.linspace(-1, 1, w.numel()))
    save_model(model, run / "model_best")
    res = layer_usage(run, max_utts=3)
    L = len(res["layer_ids"])
    assert len(res["key_weights"]) == len(res["value_weights"]) == L
    assert res["weights"] == pytest.approx(res["value_weights"], abs=1e-6)  # `weights`: the value side, as before
    if aggregation == "superb":
        be = load_model(run).backend
        np.testing.assert_allclose(res["key_weights"], be.key_aggregate.layer_weights().numpy(), rtol=1e-5)
        np.testing.assert_allclose(res["value_weights"], be.value_aggregate.layer_weights().numpy(), rtol=1e-5)
        assert not np.allclose(res["key_weights"], res["value_weights"]) and "heat_maps" not in res
    else:  # LAP aggregators: frame-level, one map each
        assert set(res["heat_maps"]) == {"key_aggregate.pool", "value_aggregate.pool"}
