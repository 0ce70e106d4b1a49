"""Training engine: schedules, accumulation, EMA, unfreeze, phases chain, 2-process DDP on CPU."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from layersv.optim import lr_factor
from layersv.runs import fit
from layersv.train import StepBatches

from conftest import tiny_config


def rows(run):
    return list(csv.DictReader(open(Path(run) / "metrics.csv")))


def test_step_batches_partition_the_single_process_batch():
    single = [i for b in StepBatches(3, 2, 8, 1, 0, 1) for i in b]
    shards = [[i for b in StepBatches(3, 2, 8, 2, r, 2) for i in b] for r in range(2)]
    assert sorted(shards[0] + shards[1]) == single == list(range(24, 40))
    assert not set(shards[0]) & set(shards[1])


def test_lr_schedules_shapes():
    assert lr_factor("constant", 5, 10) == 1.0
    assert lr_factor("cosine", 0, 100, warmup=10) == pytest.approx(0.0)  # warm-up starts at min_lr (0 here)
    assert lr_factor("cosine", 5, 100, warmup=10) == pytest.approx(0.5)
    assert lr_factor("cosine", 10, 100, warmup=10) == pytest.approx(1.0)
    assert lr_factor("cosine", 99, 100, warmup=10) == pytest.approx(0.0)  # the last step is at min_lr
    # LAP: restarts every 20 steps, each peak decayed by 0.75
    assert lr_factor("cosine_restarts", 20, 100, cycle_steps=20, restart_decay=0.75) == pytest.approx(0.75)
    # ECAPA triangular2: peak 1 at the first half-cycle, 0.5 at the second
    assert lr_factor("cyclic", 10, 100, cycle_steps=10) == pytest.approx(1.0)
    assert lr_factor("cyclic", 30, 100, cycle_steps=10) == pytest.approx(0.5)
    # tri-stage: hold at 1, end at 0.05
    assert lr_factor("tristage", 30, 100) == 1.0
    assert lr_factor("tristage", 99, 100, min_factor=0.1) == pytest.approx(0.1)  # the seed: 5e-6 -> 5e-5 -> 5e-6
    assert lr_factor("tristage", 0, 100, min_factor=0.1) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="valid"):
        lr_factor("nope", 1, 2)


def test_accumulation_matches_full_batch_without_batchnorm_effects(tiny_data, tmp_path):
    # softmax head, same data: one batch of 8 vs two accumulated micro-batches of 4 give close losses
    a = fit(tiny_config(tiny_data, batch_size=8, nb_total_step=2, skiptest=True), tmp_path / "a", progress=False)
    b = fit(tiny_config(tiny_data, batch_size=8, accum_steps=2, nb_total_step=2, skiptest=True), tmp_path / "b",
            progress=False)
    la, lb = float(rows(a)[0]["train_loss"]), float(rows(b)[0]["train_loss"])
    assert abs(la - lb) / la < 0.25  # only BatchNorm batch statistics differ
    with pytest.raises(ValueError, match="divisible"):
        fit(tiny_config(tiny_data, batch_size=6, accum_steps=4), tmp_path / "c", progress=False)


def test_ema_and_unfreeze_schedule(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, frz_pretrain=True, unfreeze_at_step=2, ema_decay=0.9, skiptest=True)
    run = fit(cfg, tmp_path / "r", progress=False)
    log = (run / "training.log").read_text()
    assert "step 2: encoder unfrozen" in log
    last = torch.load(run / "model_last.pt", weights_only=True)  # the resume state needs no unpickling
    assert last["ema"] is not None


def test_phases_chain_frozen_joint_lmft(tiny_data, tmp_path):
    recipes = Path(__file__).resolve().parents[1] / "recipes" / "synthetic" / "configs"
    common = {"nb_total_step": "2", "nb_steps_eval": "2", "batch_size": "4", "embedding_dim": "32",
              "hidden_dim": "32", "skiptest": "true"}
    from layersv.runs.assemble import assemble_config

    f = fit(assemble_config(str(tiny_data), "SUPERB", str(recipes / "frozen.yaml"), common), tmp_path / "f",
            progress=False)
    j_cfg = assemble_config(str(tiny_data), "SUPERB", str(recipes / "joint.yaml"), {**common, "init_from": str(f)})
    assert not j_cfg.frontend.frz_pretrain and j_cfg.train.backbone_lr < j_cfg.train.lr
    j = fit(j_cfg, tmp_path / "j", progress=False)
    l_cfg = assemble_config(str(tiny_data), "SUPERB", str(recipes / "lmft.yaml"), {**common, "init_from": str(j)})
    assert l_cfg.head.args["margin"] == 0.5 and l_cfg.data.train_max_sec == 6.0
    lm = fit(l_cfg, tmp_path / "l", progress=False)
    assert "head loaded" in (tmp_path / "j" / "training.log").read_text()
    assert "head loaded" in (lm / "training.log").read_text()
    assert float(rows(lm)[0]["margin"]) == pytest.approx(0.5)
    assert float(rows(f)[0]["lr"]) > 0


@pytest.mark.parametrize("phase", ["frozen", "joint", "lmft"])
def test_phase_configs_round_trip_overrides(tiny_data, tmp_path, phase):
    from layersv.runs.assemble import assemble_config, registries
    from layersv.config import load_config, save_config

    path = Path(__file__).resolve().parents[1] / "recipes" / "synthetic" / "configs" / f"{phase}.yaml"
    cfg = assemble_config(str(tiny_data), "SUPERB", str(path), {"batch_size": "12", "margin": "0.25"})
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml", registries())
    assert again == cfg and again.train.batch_size == 12 and again.head.args["margin"] == 0.25


def test_tensorboard_logger(tiny_data, tmp_path):
    pytest.importorskip("tensorboard")
    run = fit(tiny_config(tiny_data, logger="tensorboard", skiptest=True), tmp_path / "tb", progress=False)
    assert any((run / "tb").iterdir())


def test_ddp_two_processes_matches_single_process(tiny_data, tmp_path):
    """A real 2-process DDP run (gloo, CPU) reproduces the single-process loss curve.

    Each rank takes half of every global batch; the single-process reference accumulates the
    same two halves, so BatchNorm sees identical micro-batches and the curves must agree
    (ASTP's score dropout is off: ranks draw their own random masks).
    """
    args = ["train", str(tiny_data), "SUPERB", "--config", "quickstart", "--no-progress", "--nb_total_step", "4",
            "--nb_steps_eval", "2", "--batch_size", "8", "--train_max_sec", "1.0", "--embedding_dim", "32",
            "--hidden_dim", "32", "--dropout", "0.0", "--skiptest"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "layersv.cli", *args, "--out", str(tmp_path / "ddp")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = fit(tiny_config(tiny_data, batch_size=8, accum_steps=2, nb_total_step=4, dropout=0.0, skiptest=True),
                 tmp_path / "single", progress=False)
    d, s = rows(tmp_path / "ddp"), rows(single)
    assert [r["step"] for r in d] == [r["step"] for r in s] == ["2", "4"]
    for rd, rs in zip(d, s):
        assert float(rd["train_loss"]) == pytest.approx(float(rs["train_loss"]), rel=1e-3)
        assert float(rd["lr"]) == pytest.approx(float(rs["lr"]))


def test_pooled_tap_run_reloads_with_the_pooled_embedding(tiny_data, tmp_path):
    """A run trained with tap: pooled: the head is sized by the projection (head_dim), the saved model
    reloads without the config and embeds with the pooled statistics (2 × hidden_dim)."""
    import layersv

    run = fit(tiny_config(tiny_data, tap="pooled", nb_total_step=2, skiptest=True), tmp_path / "r", progress=False)
    model = layersv.load_model(run)
    assert model.embedding_dim == 64 and model.backend.head_dim == 32
    wav = torch.randn(2, 16000)
    assert model.eval()(wav, torch.tensor([16000, 12000])).shape == (2, 64)


def test_valid_scoring_plda_selects_on_plda_scores(tiny_data, tmp_path):
    """train.valid_scoring plda: each cycle fits a PLDA on the training utterances' embeddings and
    scores the validation trials with it; the logged validation EER is that of the PLDA scores."""
    from layersv import metrics
    from layersv.data.dataset_folder import check_dataset, open_dataset
    from layersv.scoring.plda import PLDA, plda_scores, plda_training_rows
    from layersv.runs.folder import training_rows
    from layersv.train import validate

    cfg = tiny_config(tiny_data, valid_scoring="plda", nb_total_step=2, skiptest=True)
    run = fit(cfg, tmp_path / "r", progress=False)
    va = float(rows(run)[-1]["valid_eer"])
    assert 0.0 <= va <= 100.0
    import layersv

    model = layersv.load_model(run).eval()
    ds = open_dataset(tiny_data)
    infos = check_dataset(ds, ("valid",))
    got = validate(model, ds, infos, cfg, "cpu", False)
    cos = validate(model, ds, infos, tiny_config(tiny_data, valid_scoring="cosine"), "cpu", False)
    # by hand: PLDA on the training rows' embeddings, then the trial scores
    from layersv.train import _embed_for_validation

    e = cfg.eval
    tr_rows = plda_training_rows(training_rows(cfg, ds), e.plda_speakers, e.plda_utts_per_speaker, cfg.seed)
    tr = _embed_for_validation(model, ds, [p for p, _ in tr_rows], infos, cfg, "cpu", False, "train")
    spk = dict(tr_rows)
    labels = [spk[k] for k in tr.keys]
    trials = ds.trials("valid")
    emb = _embed_for_validation(model, ds, trials.utterances, infos, cfg, "cpu", False, "valid")
    plda = PLDA.fit(tr.matrix, labels, dim=min(tr.matrix.shape[1], len(set(labels)) - 1))
    assert got["eer"] == pytest.approx(metrics.eer(plda_scores(plda, emb, trials), trials.labels))
    assert "eer" in cos
    with pytest.raises(ValueError, match="valid: cosine, plda"):
        validate(model, ds, infos, tiny_config(tiny_data, valid_scoring="nope"), "cpu", False)
