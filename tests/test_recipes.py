"""Seed-faithful recipes (issues 11 §4 and 12): schedules, phase configs, unread keys, margin ramp,
classifier carried across phases, seed initialisations, seed switches of the baselines (padded
batch == single item, parameter counts per seed input), ``eval --trials``."""

from __future__ import annotations

import json
import math

import pytest
import torch

from layersv.backends import build_backend
from layersv.runs.assemble import assemble_config
from layersv.config import ConfigError, TrainConfig
from layersv.heads import MarginSchedule, MultiHeadAAMHead, SubCenterAAMHead
from layersv.optim import build_optimizer, build_scheduler, param_groups
from layersv.utils import count_parameters

from conftest import tiny_config


pytestmark = pytest.mark.usefixtures("one_thread")


def lrs(cfg_train, total: int, lr: float) -> list[float]:
    """The lr of every optimizer step of ``total`` under the config's scheduler."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer("adam", [{"params": [p], "lr": lr}], lr, 0.0)
    sched = build_scheduler(cfg_train, opt, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


# ----------------------------------------------------------------------------- phase configs (issue 11 §4)


@pytest.mark.parametrize("model", ["LAP", "SUPERB", "MHFA"])
def test_phase_configs_resolve_to_the_seeds_values(model):
    p1 = assemble_config("", model, None, {})
    assert p1.frontend.frz_pretrain and p1.data.aug_prob == 0.6 and p1.data.train_max_sec == 2.0
    assert p1.data.speed_perturb == [0.9, 1.1] and p1.data.speed_prob == pytest.approx(0.4)  # [1,1,1,.9,1.1]
    t = p1.train
    assert (t.scheduler, t.lr, t.min_lr, t.pct_start, t.weight_decay) == ("cosine", 1e-3, 1e-5, 0.1, 5e-5)
    assert (t.margin_schedule, t.margin_ramp_frac, p1.head.args["margin"]) == ("lap-log", 0.5, 0.3)
    assert (p1.head.args["topk"], p1.head.args["topk_margin"], p1.head.args["subcenters"]) == (5, 0.06, 3)
    # the lr of phase 1: 1e-5 -> (linear, 10 % of the steps) 1e-3 -> (cosine) 1e-5 at the last step
    lr = lrs(t, 200, t.lr)
    assert lr[0] == pytest.approx(1e-5) and lr[10] == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)
    assert lr[20] == pytest.approx(1e-3) and max(lr) == pytest.approx(1e-3)
    assert all(a <= b for a, b in zip(lr[:20], lr[1:21])) and all(a >= b for a, b in zip(lr[20:], lr[21:]))
    assert lr[-1] == pytest.approx(1e-5)

    p2 = assemble_config("", model, "LAP-phase2", {})
    assert not p2.frontend.frz_pretrain and not p2.frontend.frz_cnn  # every group, the CNN included
    assert p2.data.speed_perturb == [] and p2.data.aug_prob == 0.6 and p2.data.train_max_sec == 2.0
    t2 = p2.train
    assert (t2.lr, t2.backbone_lr, t2.min_lr, t2.weight_decay) == (5e-5, 5e-5, 5e-6, 1e-5)
    assert t2.margin_schedule == "none" and p2.head.args["margin"] == 0.3 and p2.head.args["topk"] == 5
    lr2 = lrs(t2, 100, t2.lr)
    assert lr2[0] == pytest.approx(5e-6) and max(lr2) == pytest.approx(5e-5) and lr2[-1] == pytest.approx(5e-6)

    p3 = assemble_config("", model, "LAP-phase3", {})
    assert p3.data.train_max_sec == 6.0 and p3.data.speed_perturb == [] and not p3.frontend.frz_pretrain
    assert (p3.head.args["margin"], p3.head.args["topk"], p3.head.args["topk_margin"]) == (0.5, 0, 0.0)
    assert (p3.train.batch_size, p3.train.accum_steps) == (512, 4)  # 128 x 4 as the seed
    assert lrs(p3.train, 50, p3.train.lr) == pytest.approx([5e-6] * 50)  # constant 5e-6


def test_phase_configs_carry_to_extends(tmp_path):
    (tmp_path / "mine.yaml").write_text("extends: [LAP, LAP-phase3]\ntrain:\n  nb_total_step: 300\n")
    cfg = assemble_config("", "LAP", str(tmp_path / "mine.yaml"), {})
    assert cfg.head.args["margin"] == 0.5 and cfg.train.nb_total_step == 300 and cfg.data.train_max_sec == 6.0


# ----------------------------------------------------------------------------- unread keys, margin ramp


def test_a_key_the_chosen_component_does_not_read_is_an_error():
    with pytest.raises(ConfigError, match="onecycle.*does not read warmup_steps"):
        assemble_config("", "UniPool", None, {"warmup_steps": "100"})
    with pytest.raises(ConfigError, match="cycle_steps"):
        assemble_config("", "LAP", None, {"cycle_steps": "50"})  # cosine reads no cycle length
    with pytest.raises(ConfigError, match="n_mfcc.*not read by the ssl frontend"):
        assemble_config("", "SUPERB", None, {"n_mfcc": "40"})
    with pytest.raises(ConfigError, match="spec_augment is off"):
        assemble_config("", "X-vector", None, {"time_mask": "3"})
    with pytest.raises(ConfigError, match="margin_ramp_begin.*margin_schedule none"):
        assemble_config("", "UniPool", None, {"margin_ramp_begin": "10"})
    with pytest.raises(ConfigError, match="cls_token"):
        assemble_config("", "FinetuneWV2", None, {"cls_token": "false"})
    # switching a component drops the recipe's keys the new one does not read
    cfg = assemble_config("", "LAP", None, {"scheduler": "constant"})
    assert cfg.train.min_lr == TrainConfig().min_lr
    cfg = assemble_config("", "LAP", None, {"margin_schedule": "none"})
    assert cfg.train.margin_ramp_frac == 0.0
    cfg = assemble_config("", "LAP", None, {"margin_ramp_steps": "500"})  # the alternative key replaces frac
    assert (cfg.train.margin_ramp_steps, cfg.train.margin_ramp_frac) == (500, 0.0)
    cfg = assemble_config("", "ECAPA-TDNN", None, {"frontend": "ssl"})
    assert cfg.frontend.n_mfcc == 24 and not cfg.frontend.spec_augment


def test_margin_ramp_scales_with_the_run_and_is_clamped():
    from layersv.train import margin_ramp_length

    t = assemble_config("", "SUPERB", None, {"nb_total_step": "1500"}).train
    assert margin_ramp_length(t, 1500) == 750  # 20 of 40 epochs
    m = MarginSchedule(0.3, 0.0, 0, margin_ramp_length(t, 1500), "lap-log")
    assert m(0) == 0.0 and m(749) < 0.3 and m(750) == pytest.approx(0.3) and m(1499) == pytest.approx(0.3)
    t.margin_ramp_frac, t.margin_ramp_steps = 0.0, 42600
    assert margin_ramp_length(t, 1500) == 1500  # clamped: the target margin is reached by the last step
    t.margin_ramp_frac = 0.5
    with pytest.raises(ValueError, match="not both"):
        margin_ramp_length(t, 1500)
    cos = MarginSchedule(0.2, 0.0, 0, 100, "cos")
    assert cos(50) == pytest.approx(0.1) and cos(25) == pytest.approx(0.1 * (1 - math.cos(math.pi / 4)))


def test_explore_tristage_cyclic_schedules():
    ex = assemble_config("", "ExploreWV2", None, {}).train
    lr = lrs(ex, 130, ex.lr)
    assert max(lr) == pytest.approx(5e-3, rel=1e-3) and lr.index(max(lr)) in (59, 60)  # warm-up 6000/13000
    down = lr[61:]
    steps = [a - b for a, b in zip(down, down[1:])]
    assert max(steps) - min(steps) < 1e-9  # linear annealing
    assert ex.unfreeze_at_step == 10000 and ex.backbone_lr == ex.lr  # head only until 10/13, shared lr
    ft = assemble_config("", "FinetuneWV2", None, {}).train
    lr = lrs(ft, 100, ft.lr)
    assert lr[0] == pytest.approx(5e-6) and lr[30] == pytest.approx(5e-5) and lr[-1] == pytest.approx(5e-6)
    ec = assemble_config("", "ECAPA-TDNN", None, {}).train
    lr = lrs(ec, 80, ec.lr)  # triangular2, 4 full cycles: peaks 1e-3, 5e-4, 2.5e-4, 1.25e-4
    assert [max(lr[i * 20:(i + 1) * 20]) for i in range(4)] == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4], rel=1e-4)
    assert ec.head_weight_decay == 2e-4 and ec.weight_decay == 2e-5


def test_head_weight_decay_is_its_own_group():
    model = type("M", (torch.nn.Module,), {})()
    model.backend, model.frontend = torch.nn.Linear(3, 3), torch.nn.Linear(1, 1, bias=False)
    head = torch.nn.Linear(3, 5)
    g = param_groups(model, head, 1e-3, 0.0, head_weight_decay=2e-4)
    assert [x["name"] for x in g] == ["backend", "head"] and g[1]["weight_decay"] == 2e-4
    opt = build_optimizer("adam", g, 1e-3, 2e-5)
    assert [x["weight_decay"] for x in opt.param_groups] == [2e-5, 2e-4]


# ----------------------------------------------------------------------------- classifier across phases


def test_init_from_keeps_the_original_speakers_rows():
    from layersv.runs import carry_head_state

    torch.manual_seed(0)
    n = 7
    phase1 = SubCenterAAMHead(16, n * 3, subcenters=3)  # speed classes: speaker + n·(i + 1)
    phase2 = SubCenterAAMHead(16, n, subcenters=3)
    loaded, skipped = carry_head_state(phase2, phase1.state_dict())
    assert loaded == ["weight"] and not skipped
    torch.testing.assert_close(phase2.weight, phase1.weight[:, :n])
    back = SubCenterAAMHead(16, n * 3, subcenters=3)
    before = back.weight.detach().clone()
    carry_head_state(back, phase2.state_dict())  # speed classes added later: originals filled, rest kept
    torch.testing.assert_close(back.weight[:, :n], phase2.weight)
    torch.testing.assert_close(back.weight[:, n:], before[:, n:])
    _, skipped = carry_head_state(SubCenterAAMHead(16, 5, subcenters=3), phase1.state_dict())
    assert skipped and "not a multiple" in skipped[0]


# ----------------------------------------------------------------------------- seed initialisations


def test_classifier_init_has_the_seeds_3d_xavier_scale():
    e, c, k = 192, 5994 * 3, 3
    sub = SubCenterAAMHead(e, c, subcenters=k)
    bound = math.sqrt(6.0 / (c * (e + k)))  # xavier on the seed's (K, E, C) weight
    assert sub.weight.abs().max() <= bound and sub.weight.abs().max() > 0.9 * bound
    assert sub.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    mh = MultiHeadAAMHead(e, 1000, heads=1)
    b = math.sqrt(6.0 / (e * 1000 + 1000))
    assert mh.weight.abs().max() <= b and mh.weight.abs().max() > 0.9 * b


def test_lap_mhfa_and_ltdnn_seed_inits():
    torch.manual_seed(0)
    lap = build_backend("LAP", 25, 64, lap_dim=32, lap_heads=4)
    pool = lap.aggregate.pool
    hid = 12
    b1 = math.sqrt(6.0 / (hid + 25))  # per-head Xavier of the squeeze L -> L/2 (Kaiming before)
    assert pool.w1.abs().max() <= b1 and pool.w1.abs().max() > 0.8 * b1
    assert pool.w2.abs().max() <= b1 and pool.b1.abs().max() == 0
    mhfa = build_backend("MHFA", 5, 32, heads=4, compression=8)
    assert mhfa.pool.key.bias.abs().max() == 0 and mhfa.pool.out.bias.abs().max() == 0  # seed_init ran
    xav = math.sqrt(6.0 / (8 + 32))
    assert mhfa.pool.key.weight.abs().max() <= xav
    ltdnn = build_backend("L-TDNN_ECAPA", 3, 16, conv_dim=16, hidden_size=16, n_head=4, pool_dim=16)
    se = ltdnn.blocks[0].se.fc
    assert se[0].bias.abs().max() == 0 and se[2].bias.abs().max() == 0
    assert se[0].weight.abs().max() <= math.sqrt(6.0 / (16 + 128))


def test_lap_speaker_networks_have_the_seeds_embedding_sizes():
    sizes = {n: build_backend("LAP", 5, 32, speaker_network=n, lap_dim=16, lap_heads=4).embedding_dim
             for n in ("astp", "ecapa-tdnn", "x-vector", "mhfa")}
    assert sizes == {"astp": 192, "ecapa-tdnn": 192, "x-vector": 512, "mhfa": 256}
    assert build_backend("SUPERB", 5, 32, speaker_network="x-vector").embedding_dim == 512
    assert build_backend("SUPERB", 5, 32, speaker_network="x-vector", embedding_dim=64).embedding_dim == 64


# ----------------------------------------------------------------------------- baselines: seed switches


def conv(i, o, k):
    return i * o * k + o


def test_xvector_seed_tail_and_parameter_count_on_24_mfcc():
    be = build_backend("X-vector", 1, 24)  # the seed's input: 24 MFCC
    tdnn = conv(24, 512, 5) + 2 * conv(512, 512, 3) + conv(512, 512, 1) + conv(512, 1500, 1) + 2 * (4 * 512 + 1500)
    tail = 2 * 512 + conv(512, 512, 1) + 2 * 512  # BN6 -> ReLU -> Linear -> ReLU -> BN7
    assert count_parameters(be) == tdnn + conv(3000, 512, 1) + tail == 4_476_308
    kinds = [type(m).__name__ for m in be.network.segment7]
    assert kinds == ["BatchNorm1d", "ReLU", "Linear", "ReLU", "BatchNorm1d"]
    lap = build_backend("LAP", 5, 32, speaker_network="x-vector", lap_dim=16, lap_heads=4)
    assert [type(m).__name__ for m in lap.network.segment7] == ["ReLU", "Linear"]  # LAP's tail


@pytest.mark.parametrize("name,dim,args,expected", [
    ("X-vector", 24, {}, 4_476_308),  # 24 MFCC
    ("ECAPA-TDNN", 80, {}, 6_978_176),  # 80 MFCC, C = 512
    ("SincNet", 80, {}, 8_572_400),  # 80 sinc filters
    ("ExploreWV2", 768, {"layer": 0}, 0),  # wav2vec2-base: everything is in the encoder
    ("FinetuneWV2", 768, {}, 0),  # the CLS is a constant inside the encoder
    ("WavLM-RawNetX", 1024, {"seed_sinc": True},  # WavLM-Large (D 1024) + RawNetX: sinc, IN, 4 blocks, pool, fc, fuse
     2 * 128 + 2 * 128 + 4 * (conv(128, 128, 3) + 2 * 128 + 2 * 128 * 16) + conv(128, 128, 1) + conv(128, 1, 1)
     + conv(256, 256, 1) + conv(1024 + 256, 256, 1)),
])
def test_baseline_parameter_counts_per_seed_input(name, dim, args, expected):
    assert count_parameters(build_backend(name, 1, dim, **args)) == expected


def padded_equals_single(fn, hidden, lengths):
    batch = fn(hidden, lengths)
    for i in range(len(lengths)):
        single = fn(hidden[i:i + 1, :, :lengths[i]], lengths[i:i + 1])
        torch.testing.assert_close(batch[i:i + 1], single, rtol=1e-4, atol=1e-4)


def test_seed_switch_variants_keep_padded_batch_equal_to_single_items():
    torch.manual_seed(0)
    lengths = torch.tensor([20, 13, 7])
    hidden = torch.randn(3, 3, 20, 16)
    hidden[1, :, 13:] = 1e3
    hop = 40
    raw = build_backend("WavLM-RawNetX", 3, 16, embedding_dim=16, raw_channels=16, raw_blocks=1, seed_sinc=True).eval()

    def with_wav(h, n):
        s = h.shape[2] * hop
        wav = torch.sin(torch.arange(s)[None, :] * 0.05) + h[:, 0, :, :1].repeat_interleave(hop, 1)[..., 0].clamp(-2, 2)
        return raw(h, n, wav=wav, wav_lengths=n * hop)

    padded_equals_single(with_wav, hidden, lengths)
    sinc = build_backend("SincNet", 3, 16, conv_channels=8, fc_dim=16, fc_layers=2, conv_act="leaky_relu").eval()
    padded_equals_single(sinc, hidden, lengths)
    uni = build_backend("UniPool", 3, 16, conv_dim=8, pool_dim=16, spanout_prob=1.0).eval()  # span-out: training only
    padded_equals_single(uni, hidden, lengths)
    xv = build_backend("X-vector", 3, 16, embedding_dim=16, channels=16, pool_channels=24).eval()
    padded_equals_single(xv, hidden, lengths)


def test_rawnetx_seed_sinc_filters():
    from layersv.backends.fusion import RawSincConv

    fixed, seed = RawSincConv(8, 251), RawSincConv(8, 251, seed_sinc=True)
    f, s = fixed.filters(), seed.filters()
    assert (s[:, 125] == 0).all() and (f[:, 125] > 0).all()  # zero centre tap
    power = torch.fft.rfft(torch.cat([f, s]).detach(), 4096).abs() ** 2  # (16, 2049)
    hz = torch.arange(power.shape[1]) * 16000 / 4096
    lo = (50 + fixed.low_hz.abs()[:, 0]).detach()
    hi = lo + 50 + fixed.band_hz.abs()[:, 0].detach()

    def share(row, a, b):  # fraction of a filter's energy inside [a, b] Hz
        return (power[row, (hz >= a) & (hz <= b)].sum() / power[row].sum()).item()

    for c in range(3):  # bands whose doubled edges stay below Nyquist
        assert share(c, lo[c], hi[c]) > 0.8  # textbook band-pass: its own band
        assert share(8 + c, 2 * lo[c], 2 * hi[c]) > 0.7  # the seed's: doubled cut-offs


def test_span_out_drops_and_compacts_frames():
    from layersv.backends.layers import span_out

    torch.manual_seed(0)
    h = torch.arange(2 * 40, dtype=torch.float32).view(2, 1, 40, 1).expand(2, 2, 40, 3).contiguous()
    lengths = torch.tensor([40, 25])
    out, n = span_out(h, lengths, prob=1.0, start_prob=0.1, span=3)
    assert (n < lengths).all() and (n > 0).all()
    for b in range(2):
        kept = out[b, 0, : n[b], 0]
        assert (kept[1:] > kept[:-1]).all()  # order kept, dropped frames removed
        assert (out[b, :, n[b]:] == 0).all()
        assert set(kept.tolist()) <= set(h[b, 0, : lengths[b], 0].tolist())
    same, m = span_out(h, lengths, prob=0.0)
    assert torch.equal(same, h * (torch.arange(40) < lengths[:, None])[:, None, :, None]) and torch.equal(m, lengths)


def test_spectral_frontend_seed_modes_are_mask_aware():
    from layersv.frontends.fbank import FbankFrontend

    torch.manual_seed(0)
    wav, n = torch.randn(2, 8000), torch.tensor([8000, 5000])
    for kw in (dict(n_mfcc=24, log_db=True, var_norm=True), dict(n_mfcc=80, mean_norm=False, frame_l2=True)):
        fr = FbankFrontend(**kw).eval()
        h, ln = fr(wav, n)
        one, _ = fr(wav[1:, :5000], n[1:])
        torch.testing.assert_close(h[1, :, : ln[1]], one[0], rtol=1e-4, atol=1e-4)
    h, ln = FbankFrontend(n_mfcc=24, log_db=True, var_norm=True)(wav, n)
    v = h[1, 0, : ln[1]]
    assert v.mean(0).abs().max() < 1e-4 and (v.std(0, unbiased=False) - 1).abs().max() < 1e-3  # CMVN
    h, _ = FbankFrontend(n_mfcc=80, mean_norm=False, frame_l2=True)(wav, n)
    assert torch.allclose(h[0, 0].norm(dim=-1), torch.ones(h.shape[2]), atol=1e-5)  # per-frame L2


def test_finetunewv2_seed_cls_inside_the_encoder():
    cfg = tiny_config("", frontend="ssl")
    cfg.frontend.cls_token, cfg.model.model, cfg.model.args = True, "FinetuneWV2", {}
    from layersv.model import build_model

    torch.manual_seed(0)
    model = build_model(cfg).eval()
    plain = build_model(tiny_config("")).frontend.eval()
    wav, n = torch.randn(3, 8000), torch.tensor([8000, 6000, 4000])
    hidden, lengths = model.frontend(wav, n)
    assert (lengths == plain.frame_lengths(n) + 1).all()  # the CLS is a frame of every hidden state
    with torch.no_grad():
        batch = model(wav, n)
        for i in range(3):
            torch.testing.assert_close(batch[i:i + 1], model(wav[i:i + 1, : n[i]], n[i:i + 1]), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(batch, hidden[:, -1, 0])
    assert count_parameters(model.backend) == 0
    d = model.frontend.describe()
    assert d["cls_token"] is True
    assert type(model.frontend).from_description(d).frame_lengths(n).tolist() == lengths.tolist()


# ----------------------------------------------------------------------------- eval --trials (issue 12)


def test_eval_trials_writes_next_to_the_run_report_never_over_it(tiny_data, tmp_path):
    from layersv.runs.evaluate import evaluate_run
    from layersv.runs import fit

    run = fit(tiny_config(tiny_data, nb_total_step=2, nb_steps_eval=2), tmp_path / "run", progress=False)
    own = {f: (run / f).read_bytes() for f in ("report.json", "report.md", "calibration.json")}
    own_scores = {p.name: p.read_bytes() for p in (run / "scores").glob("*.csv")}
    rep = evaluate_run(run, progress=False, trials="valid")  # a trial list of the dataset folder by name
    valid_lines = (tiny_data / "valid_trials.csv").read_text().strip().splitlines()
    assert rep["trials"] == len(valid_lines) - 1 and rep["split"] == "valid"
    assert json.loads((run / "report_valid.json").read_text())["trials"] == rep["trials"]
    for f in ("report_valid.md", "det_valid.png", "score_hist_valid.png", "scores/valid_cosine.csv"):
        assert (run / f).is_file(), f
    mine = tmp_path / "my_list.txt"  # any trial file (VoxCeleb "label a b" form), paths under the audio root
    mine.write_text("\n".join(" ".join(line.split(",")[:3]) for line in valid_lines[1:7]) + "\n")
    rep = evaluate_run(run, progress=False, trials=str(mine))
    assert rep["trials"] == 6 and (run / "report_my_list.json").is_file()
    assert (run / "scores" / "my_list_mean_sub.csv").read_text().count("\n") == 7
    assert {f: (run / f).read_bytes() for f in own} == own  # the run's own report is untouched
    assert all((run / "scores" / k).read_bytes() == v for k, v in own_scores.items())
    with pytest.raises(FileNotFoundError, match="available: .*test.*valid"):
        evaluate_run(run, progress=False, trials="vox1_e")


def test_qmf_seed_features_are_the_seeds_nine_in_order():
    import numpy as np

    from layersv.scoring.calibration import FEATURES_SEED, qmf_features, side_quality

    unit = np.array([[0.6, -0.8], [1.0, 0.0]])
    q = side_quality(unit, np.array([2.0, 3.0]), np.array([4.0, 9.0]))
    f = qmf_features(np.array([0.5]), q.rows(np.array([0])), q.rows(np.array([1])), "seed9")
    assert len(FEATURES_SEED) == 9 and f.shape == (1, 9)
    std_e, std_t = 2.0 * np.std([0.6, -0.8]), 3.0 * np.std([1.0, 0.0])
    np.testing.assert_allclose(f[0], [0.5, np.log(4), np.log(9), 2.8, 2.0, 3.0, 3.0, std_e, std_t])
    assert assemble_config("", "LAP", None, {}).eval.qmf_features == "seed9"
    from layersv.scoring.calibration import SEED_SWAP, fit_qmf

    rng = np.random.default_rng(0)
    feats, labels = rng.standard_normal((200, 9)), rng.integers(0, 2, 200)
    feats[:, 0] += 2 * labels
    cal = fit_qmf(feats, labels, names=FEATURES_SEED)  # fitted on both orders, scored as their mean
    np.testing.assert_allclose(cal.llr(feats), cal.llr(feats[:, SEED_SWAP]))
    e = assemble_config("", "LAP", None, {}).eval
    assert (e.asnorm_topk, e.cohort_size, e.cohort_utts_per_speaker) == (600, 0, 0)  # LAP: whole training set


def test_raw_waveform_switch_turns_off_the_checkpoints_normalisation():
    from layersv.frontends import build_frontend

    cfg = tiny_config("")
    assert build_frontend(cfg.frontend).do_normalize  # the checkpoint's feature extractor normalises
    cfg.frontend.raw_waveform = True
    fr = build_frontend(cfg.frontend).eval()
    assert not fr.do_normalize
    wav, n = torch.randn(1, 4000), torch.tensor([4000])
    ref = torch.stack(fr.encoder(wav, output_hidden_states=True).hidden_states, 1)  # the un-normalised input
    torch.testing.assert_close(fr(wav, n)[0], ref[:, fr.layer_ids])
