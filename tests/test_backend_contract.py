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


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_padded_batch_equals_single_items(name):
    torch.manual_seed(0)
    be = build_backend(name, in_layers=3, in_dim=16).eval()
    lengths = torch.tensor([20, 13, 7])
    hidden = torch.randn(3, 3, 20, 16)
    hidden[1, :, 13:] = 1e3  # garbage in the padding must not matter
    hidden[2, :, 7:] = -1e3
    batch = be(hidden, lengths)
    for i in range(3):
        single = be(hidden[i : i + 1, :, : lengths[i]], lengths[i : i + 1])
        torch.testing.assert_close(batch[i : i + 1], single, rtol=1e-4, atol=1e-4)
    assert batch.shape == (3, be.embedding_dim)


@pytest.mark.parametrize("name", sorted(n for n, c in BACKENDS.items() if hasattr(c, "layer_weights")))
def test_gradients_reach_layer_weights(name):
    be = build_backend(name, in_layers=3, in_dim=16).train()
    out = be(torch.randn(4, 3, 10, 16), torch.tensor([10, 9, 8, 10]))
    out.pow(2).sum().backward()
    w = be.layer_weights()
    assert w.shape == (3,) and torch.allclose(w.sum(), torch.tensor(1.0))
    grads = [p.grad for n, p in be.named_parameters() if "weights" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_attentive_pool_ignores_padding():
    pool = AttentiveStatsPool(4).eval()
    x = torch.randn(1, 4, 6)
    a = pool(x, torch.tensor([4]))
    x2 = x.clone()
    x2[..., 4:] = 55.0
    torch.testing.assert_close(a, pool(x2, torch.tensor([4])))
