"""Backends, parametrised over the registry: shapes, normalised eval embeddings through a tiny
encoder, layer weights/attention, learning on a tiny batch, seed-faithful parameter counts.

(Padded batch == single item and gradients reaching the layer weights: test_backend_contract.py.)
Small constructor arguments keep this file fast; base sizes are only used for parameter counts.
"""

import pytest
import torch

from layersv.backends import BACKENDS, build_backend
from layersv.backends.superb import SPEAKER_NETWORKS
from layersv.heads import build_head
from layersv.utils import count_parameters

SMALL = {
    "SUPERB": dict(embedding_dim=16),
    "LAP": dict(embedding_dim=16, lap_dim=16, lap_heads=4),
    "MHFA": dict(embedding_dim=16, heads=4, compression=8),
    "UniPool": dict(conv_dim=8, pool_dim=16),
    "L-TDNN_ECAPA": dict(conv_dim=16, hidden_size=16, n_head=4, pool_dim=16),
    "L-TDNN_D3Net": dict(conv_dim=16, hidden_size=16, n_head=4, pool_dim=16),
    "X-vector": dict(embedding_dim=16, channels=16, pool_channels=24),
    "ECAPA-TDNN": dict(channels=16, embedding_dim=16, cat_dim=24),
    "SincNet": dict(conv_channels=8, fc_dim=16, fc_layers=2),
    "ExploreWV2": dict(),
    "FinetuneWV2": dict(),
    "FinetuneWV2-CLSHead": dict(num_layers=1, num_heads=2, ffn_dim=16),
    "WavLM-RawNetX": dict(embedding_dim=16, raw_channels=16, raw_blocks=1),
}
L, D = 3, 16


pytestmark = pytest.mark.usefixtures("one_thread")


TRAINABLE = sorted(n for n, c in BACKENDS.items() if getattr(c, "trainable", True))  # Stats is fitted, not trained


def test_small_sizes_cover_the_registry():
    assert set(SMALL) == set(TRAINABLE)


def run(be, hidden, lengths, hop=40):
    if getattr(be, "needs_waveform", False):
        torch.manual_seed(1)
        wav = torch.randn(hidden.shape[0], hidden.shape[2] * hop)
        return be(hidden, lengths, wav=wav, wav_lengths=lengths * hop)
    return be(hidden, lengths)


@pytest.mark.parametrize("name", TRAINABLE)
def test_output_shape_and_layer_analysis(name):
    torch.manual_seed(0)
    be = build_backend(name, L, D, **SMALL[name])
    hidden, lengths = torch.randn(4, L, 12, D), torch.tensor([12, 11, 9, 12])
    assert run(be.train(), hidden, lengths).shape == (4, be.embedding_dim)
    out = run(be.eval(), hidden, lengths)
    assert out.shape == (4, be.embedding_dim) and torch.isfinite(out).all()
    if hasattr(be, "layer_weights"):
        w = be.layer_weights()
        assert w.shape == (L,) and (w >= 0).all() and w.sum().item() == pytest.approx(1.0)
    else:
        a = be.layer_attention(hidden, lengths)
        assert a.shape == (4, L) and (a >= 0).all() and torch.allclose(a.sum(-1), torch.ones(4))


@pytest.mark.parametrize("name", TRAINABLE)
def test_eval_embeddings_are_l2_normalised(name):
    from layersv.frontends.ssl import SSLFrontend, load_hf_encoder
    from layersv.model import SpeakerEncoder

    torch.manual_seed(0)
    enc, norm = load_hf_encoder("tiny-wavlm")
    fr = SSLFrontend(enc, do_normalize=norm)
    args = dict(SMALL[name])
    if name == "LAP":
        args["lap_heads"] = 1 if fr.dim % 4 else 4
    be = build_backend(name, fr.num_layers, fr.dim, **args)
    model = SpeakerEncoder(fr, be, "ssl", name, args)
    e = model.embed(torch.randn(2, 8000), lengths=torch.tensor([8000, 5000]))
    assert e.shape == (2, be.embedding_dim)
    assert abs(float((e**2).sum(-1).max()) - 1) < 1e-4 and abs(float((e**2).sum(-1).min()) - 1) < 1e-4


@pytest.mark.parametrize("name", TRAINABLE)
def test_a_few_steps_reduce_the_loss(name):
    torch.manual_seed(0)
    be = build_backend(name, L, D, **SMALL[name]).train()
    head = build_head("aam", be.embedding_dim, 4, margin=0.1, scale=10.0)
    hidden = torch.randn(8, L, 12, D)
    labels = torch.arange(8) % 4
    hidden = hidden + 2.0 * labels[:, None, None, None].float().sin()  # class-dependent offset
    lengths = torch.tensor([12, 10, 12, 9, 12, 11, 12, 10])
    opt = torch.optim.Adam(list(be.parameters()) + list(head.parameters()), lr=3e-3)
    losses = []
    for _ in range(5):
        loss, _ = head(run(be, hidden, lengths), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("net", sorted(SPEAKER_NETWORKS))
@pytest.mark.parametrize("agg", ["SUPERB", "LAP"])
def test_aggregation_times_speaker_network(agg, net):
    torch.manual_seed(0)
    args = dict(speaker_network=net, embedding_dim=12, channels=16, mhfa_heads=4, mhfa_compression=8)
    if agg == "LAP":
        args.update(lap_dim=16, lap_heads=4)
    be = build_backend(agg, L, D, **args).eval()
    hidden, lengths = torch.randn(2, L, 12, D), torch.tensor([12, 8])
    out = be(hidden, lengths)
    assert out.shape == (2, 12)
    torch.testing.assert_close(out[1:], be(hidden[1:, :, :8], lengths[1:]), rtol=1e-4, atol=1e-4)
    a = be.layer_attention(hidden, lengths)
    assert a.shape == (2, L) and torch.allclose(a.sum(-1), torch.ones(2))


def test_unknown_speaker_network_and_model_errors_list_names():
    with pytest.raises(ValueError, match="astp"):
        build_backend("SUPERB", L, D, speaker_network="tdnn")
    with pytest.raises(ValueError, match="UniPool"):
        build_backend("unipool", L, D)


# spec §2-§4: parameter counts computed from the seeds' architectures
SPEC_COUNTS = [
    ("UniPool", 13, 768, {}, 2.87e6),
    ("UniPool", 25, 1024, {}, 3.01e6),
    ("L-TDNN_ECAPA", 13, 768, {}, 5.72e6),
    ("L-TDNN_ECAPA", 25, 1024, {}, 6.70e6),
    ("L-TDNN_D3Net", 13, 768, {}, 6.48e6),
    ("LAP", 25, 1024, {}, 2.31e6),
    ("SUPERB", 25, 1024, {}, 2.50e6),
    ("MHFA", 25, 1024, {}, 2.37e6),
    ("MHFA", 25, 1024, {"aggregation": "lap"}, 5.41e6),
]


@pytest.mark.parametrize("name,layers,dim,args,expected", SPEC_COUNTS)
def test_parameter_counts_match_the_spec(name, layers, dim, args, expected):
    n = count_parameters(build_backend(name, layers, dim, **args))
    assert abs(n - expected) / expected < 0.005, n


def test_unipool_layer0_and_double_residual():
    torch.manual_seed(0)
    hidden, lengths = torch.randn(2, L, 10, D), torch.tensor([10, 7])
    single = build_backend("UniPool", L, D, **SMALL["UniPool"]).eval()
    assert single.layer_attention(hidden, lengths)[:, 0].abs().max() == 0  # layer 0 excluded
    torch.manual_seed(0)
    double = build_backend("UniPool", L, D, seed_double_residual=True, **SMALL["UniPool"]).eval()
    assert not torch.allclose(single(hidden, lengths), double(hidden, lengths))
    keep0 = build_backend("UniPool", L, D, exclude_layer0=False, **SMALL["UniPool"]).eval()
    assert keep0.layer_attention(hidden, lengths)[:, 0].min() > 0


def test_rawnetx_needs_waveform_and_final_relu_flag():
    torch.manual_seed(0)
    hidden, lengths = torch.randn(3, L, 10, D), torch.tensor([10, 10, 10])
    be = build_backend("WavLM-RawNetX", L, D, **SMALL["WavLM-RawNetX"]).eval()
    with pytest.raises(ValueError, match="waveform"):
        be(hidden, lengths)
    assert (run(be, hidden, lengths) < 0).any()  # fixed: no ReLU before cosine scoring
    seed = build_backend("WavLM-RawNetX", L, D, seed_final_relu=True, **SMALL["WavLM-RawNetX"]).eval()
    assert (run(seed, hidden, lengths) >= 0).all()


def test_explore_and_finetune_use_one_hidden_state():
    torch.manual_seed(0)
    hidden, lengths = torch.randn(2, L, 10, D), torch.tensor([10, 6])
    ex = build_backend("ExploreWV2", L, D)
    torch.testing.assert_close(ex(hidden, lengths)[1], hidden[1, 1, :6].mean(0))
    assert ex.layer_weights().tolist() == [0.0, 1.0, 0.0]
    ft = build_backend("FinetuneWV2-CLSHead", L, D, **SMALL["FinetuneWV2-CLSHead"]).eval()
    changed = hidden.clone()
    changed[:, 1:] += 5.0  # only hidden state 0 feeds the CLS transformer
    torch.testing.assert_close(ft(hidden, lengths), ft(changed, lengths))


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_model_has_a_valid_recipe(name):
    from layersv.runs.assemble import assemble_config, recipe_for_model

    assert recipe_for_model(name) is not None, f"configs/{name}.yaml missing"
    cfg = assemble_config("", name, None, {})
    assert cfg.model.model == name
    from layersv.config import signature_defaults

    assert set(cfg.model.args) <= set(signature_defaults(BACKENDS[name]))


def test_waveform_backend_trains_through_the_model(tiny_data, tmp_path):
    """WavLM-RawNetX gets the waveform from SpeakerEncoder in training and in evaluation."""
    from layersv.runs.assemble import assemble_config
    from layersv.runs import fit

    ov = {"backbone_cfg": "tiny-wavlm", "frz_pretrain": "true", "nb_total_step": "2", "nb_steps_eval": "2",
          "batch_size": "4", "train_max_sec": "1.0", "embedding_dim": "16", "raw_channels": "8",
          "raw_blocks": "1", "lr": "0.001"}
    cfg = assemble_config(str(tiny_data), "WavLM-RawNetX", None, ov)
    assert cfg.head.head == "am" and cfg.model.args["seed_final_relu"] is False
    fit(cfg, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "model_last.pt").is_file()


@pytest.mark.parametrize("name,args", [("SUPERB", {"hidden_dim": 16, "embedding_dim": 8}),
                                       ("LAP", {"embedding_dim": 8, "lap_dim": 16, "lap_heads": 4}),
                                       ("MHFA", {"heads": 4, "compression": 8, "embedding_dim": 8})])
def test_feature_norm_standardises_each_layer_and_keeps_padding_invariance(name, args):
    """feature_norm: per-(layer, dim) statistics over valid frames only; eval uses running estimates,
    so a padded batch equals one item at a time; layers of very different scale end comparable."""
    from layersv.backends import build_backend
    from layersv.backends.layers import MaskedFeatureNorm

    torch.manual_seed(0)
    scale = torch.tensor([1.0, 30.0, 1000.0])[None, :, None, None]
    h = torch.randn(4, 3, 40, 16) * scale + 7.0
    lens = torch.tensor([40, 31, 22, 9])
    h_pad = h.clone()
    for i, n in enumerate(lens):
        h_pad[i, :, n:] = 1e6  # padding must not leak into the statistics
    norm = MaskedFeatureNorm(3, 16, momentum=1.0)
    out = norm(h_pad, lens)
    valid = torch.cat([out[i, :, :n] for i, n in enumerate(lens)], 1)  # (L, frames, D)
    assert valid.mean((1, 2)).abs().max() < 1e-4 and (valid.std((1, 2)) - 1).abs().max() < 1e-2
    b = build_backend(name, 3, 16, feature_norm=True, **args)
    b.train()
    for _ in range(3):
        b(h_pad, lens)
    b.eval()
    batch = b(h_pad, lens)
    single = torch.cat([b(h[i:i + 1, :, :n], lens[i:i + 1]) for i, n in enumerate(lens)])
    torch.testing.assert_close(batch, single, atol=1e-4, rtol=1e-4)
    rv = b.feature_norm.running_var.mean(1)  # per layer: ~1, ~900, ~1e6 (padding at 1e6 would give ~1e11)
    assert 0.5 < rv[0] < 2 and 400 < rv[1] < 2000 and 4e5 < rv[2] < 2e6


@pytest.mark.parametrize("name,args", [("SUPERB", {"hidden_dim": 16, "embedding_dim": 8}),
                                       ("LAP", {"embedding_dim": 8, "lap_dim": 16, "lap_heads": 4, "hidden_dim": 12})])
def test_pooled_tap_trains_the_projection_and_infers_the_pooled_statistics(name, args):
    """tap: pooled — training returns the projection the head sees (head_dim), inference the
    batch-normalised pooled statistics below it (2 × hidden_dim), still padding-invariant."""
    from layersv.backends import build_backend

    torch.manual_seed(0)
    h, lens = torch.randn(3, 3, 30, 16), torch.tensor([30, 21, 9])
    b = build_backend(name, 3, 16, tap="pooled", **args)
    assert b.head_dim == 8 and b.embedding_dim == 2 * args["hidden_dim"]
    b.train()
    assert b(h, lens).shape == (3, 8)
    b.eval()
    pooled = b(h, lens)
    assert pooled.shape == (3, b.embedding_dim)
    single = torch.cat([b(h[i:i + 1, :, :n], lens[i:i + 1]) for i, n in enumerate(lens)])
    torch.testing.assert_close(pooled, single, atol=1e-4, rtol=1e-4)
    plain = build_backend(name, 3, 16, **args)
    plain.load_state_dict(b.state_dict())  # same parameters: the tap adds none
    plain.eval()
    assert plain(h, lens).shape == (3, 8)
    with pytest.raises(ValueError, match="valid: embedding, pooled"):
        build_backend(name, 3, 16, tap="nope", **args)
    with pytest.raises(ValueError, match="astp"):
        build_backend(name, 3, 16, tap="pooled", speaker_network="x-vector", embedding_dim=8)
