"""The tensor contract: a padded batch gives the same embeddings as one item at a time."""

import pytest
import torch

from layersv.backends import BACKENDS, build_backend
from layersv.backends.layers import AttentiveStatsPool, masked_mean_std


def test_masked_mean_std_golden():
    x = torch.tensor([[[1.0, 3.0, 100.0]]])  # (B=1, C=1, T=3), last frame is padding
    mean, std = masked_mean_std(x, torch.tensor([[True, True, False]]))
    assert mean.item() == pytest.approx(2.0)
    assert std.item() == pytest.approx(1.0, abs=1e-4)  # population std of [1, 3]


def call(be, hidden, lengths):
    """Run a backend; backends that also read the waveform (``needs_waveform``) get a synthetic one
    whose valid samples are a fixed function of the item, so padding is the only difference."""
    if not getattr(be, "needs_waveform", False):
        return be(hidden, lengths)
    hop = 40
    s = hidden.shape[2] * hop
    wav = torch.sin(torch.arange(s)[None, :] * 0.05)
    wav = wav + hidden[:, 0, :, :1].repeat_interleave(hop, 1)[..., 0].clamp(-2, 2)
    wav_lengths = lengths * hop
    wav = wav.masked_fill(torch.arange(s)[None, :] >= wav_lengths[:, None], 7.0)  # garbage padding
    return be(hidden, lengths, wav=wav, wav_lengths=wav_lengths)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_padded_batch_equals_single_items(name):
    torch.manual_seed(0)
    be = build_backend(name, in_layers=3, in_dim=16).eval()
    lengths = torch.tensor([20, 13, 7])
    hidden = torch.randn(3, 3, 20, 16)
    hidden[1, :, 13:] = 1e3  # garbage in the padding must not matter
    hidden[2, :, 7:] = -1e3
    batch = call(be, hidden, lengths)
    for i in range(3):
        single = call(be, hidden[i : i + 1, :, : lengths[i]], lengths[i : i + 1])
        torch.testing.assert_close(batch[i : i + 1], single, rtol=1e-4, atol=1e-4)
    assert batch.shape == (3, be.embedding_dim)


NO_LAYER_AGGREGATION = {"Stats": "training-free: fixed statistics of chosen layers, no trainable parameters"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.skip(reason=NO_LAYER_AGGREGATION[n]))
                                  if n in NO_LAYER_AGGREGATION else n for n in sorted(BACKENDS)])
def test_gradients_reach_layer_weights(name):
    """Static layer weights (``layer_weights()``) and/or per-layer attention (``layer_attention()``) are
    exposed, normalised over the layers, and every trainable parameter gets a gradient."""
    torch.manual_seed(0)
    be = build_backend(name, in_layers=3, in_dim=16).train()
    hidden, lengths = torch.randn(4, 3, 10, 16, requires_grad=True), torch.tensor([10, 9, 8, 10])
    out = call(be, hidden, lengths)
    out.pow(2).sum().backward()
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0
    checked = []
    if hasattr(be, "layer_weights"):
        w = be.layer_weights()
        assert w.shape == (3,) and torch.allclose(w.sum(), torch.tensor(1.0)) and (w >= 0).all()
        checked.append("layer_weights")
    if hasattr(be, "layer_attention"):
        with torch.no_grad():
            w = be.eval().layer_attention(hidden, lengths)
        assert w.shape == (4, 3) and torch.allclose(w.sum(-1), torch.ones(4), atol=1e-5) and (w >= 0).all()
        padded = hidden.detach().clone()
        padded[2, :, 8:] = 1e3  # item 2 has 8 valid frames: its attention ignores the padding
        torch.testing.assert_close(be.layer_attention(padded, lengths)[2], w[2], rtol=1e-4, atol=1e-5)
        checked.append("layer_attention")
    assert checked, f"{name} exposes neither layer_weights() nor layer_attention()"
    missing = [n for n, p in be.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, f"parameters without gradient: {missing}"


def test_attentive_pool_ignores_padding():
    pool = AttentiveStatsPool(4).eval()
    x = torch.randn(1, 4, 6)
    a = pool(x, torch.tensor([4]))
    x2 = x.clone()
    x2[..., 4:] = 55.0
    torch.testing.assert_close(a, pool(x2, torch.tensor([4])))
