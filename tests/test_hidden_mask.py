"""Time masks on hidden states (data.hidden_time_masks): spans, layers, determinism, training only."""

import pytest
import torch

from layersv.frontends.hidden_mask import HiddenTimeMask, time_masks

from conftest import tiny_config


def test_time_masks_zero_short_spans_of_valid_frames_in_every_layer():
    torch.manual_seed(0)
    h = torch.randn(6, 3, 50, 4) + 10.0  # no zeros of its own
    lens = torch.tensor([50, 40, 30, 20, 10, 5])
    out = time_masks(h, lens, n_masks=2, max_width=7)
    zero = (out == 0).all(-1)  # (B, L, T)
    assert (zero == zero[:, :1]).all()  # the same frames in every layer
    for b, n in enumerate(lens):
        z = zero[b, 0]
        assert int(z.sum()) <= 14  # two spans of at most 7 frames
        if z.any():
            assert int(torch.nonzero(z).min()) < int(n)  # spans start in the valid frames
    kept = ~zero[:, :, :, None].expand_as(h)
    assert torch.equal(out[kept], h[kept])  # the rest untouched
    torch.manual_seed(1)
    a = time_masks(h, lens, 2, 7)
    torch.manual_seed(1)
    assert torch.equal(a, time_masks(h, lens, 2, 7))  # seeded: reproducible
    assert zero.any()


def test_wrapper_masks_in_training_only():
    class Ident(torch.nn.Module):
        sample_rate = 16000

        def forward(self, x, n):
            return x, n

    m = HiddenTimeMask(Ident(), 3, 10)
    h, lens = torch.randn(4, 2, 40, 3) + 5, torch.tensor([40, 30, 20, 10])
    assert m.sample_rate == 16000
    m.eval()
    assert torch.equal(m(h, lens)[0], h)
    m.train()
    torch.manual_seed(0)
    assert (m(h, lens)[0] == 0).any()


def test_training_with_hidden_time_masks_and_the_unread_key_error(tiny_data, tmp_path):
    from layersv.config import ConfigError
    from layersv.runs import fit

    run = fit(tiny_config(tiny_data, hidden_time_masks=2, hidden_time_mask=5, nb_total_step=2, skiptest=True),
              tmp_path / "r", progress=False)
    assert (run / "model_best.json").exists()
    with pytest.raises(ConfigError, match="hidden_time_mask"):
        fit(tiny_config(tiny_data, hidden_time_mask=5), tmp_path / "x", progress=False)
