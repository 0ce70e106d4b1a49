"""Fbank / MFCC / SincNet frontends: shapes, lengths, padded batch == single, SpecAugment only in training."""

import numpy as np
import pytest
import torch

from layersv.backends import build_backend
from layersv.config import FrontendConfig
from layersv.frontends import build_frontend
from layersv.model import SpeakerEncoder, save_model

CASES = [("fbank", {}, 80, 100.0), ("mfcc", {"n_mfcc": 24}, 24, 100.0), ("mfcc", {"n_mfcc": 80}, 80, 100.0),
         ("sincnet", {}, 80, 16000 / 3)]


@pytest.mark.parametrize("name,kw,dim,rate", CASES)
def test_shapes_lengths_and_padded_equals_single(name, kw, dim, rate):
    fr = build_frontend(FrontendConfig(frontend=name, **kw)).eval()
    assert fr.num_layers == 1 and fr.dim == dim and fr.frame_rate == pytest.approx(rate)
    wav = torch.randn(3, 16000) * 0.1
    lengths = torch.tensor([16000, 12000, 7000])
    with torch.no_grad():
        hb, lb = fr(wav, lengths)
        assert hb.shape[:2] == (3, 1) and hb.shape[-1] == dim and hb.shape[2] == lb.max()
        for i in range(3):
            hs, ls = fr(wav[i : i + 1, : lengths[i]], lengths[i : i + 1])
            assert ls.item() == lb[i].item() == hs.shape[2]
            torch.testing.assert_close(hb[i : i + 1, :, : ls.item()], hs, rtol=1e-4, atol=1e-4)
            assert (hb[i, :, ls.item():] == 0).all()


def test_fbank_frame_count_mean_norm_and_mfcc_is_dct_of_fbank():
    fb = build_frontend(FrontendConfig(frontend="fbank")).eval()
    _, n = fb(torch.randn(1, 16000), torch.tensor([16000]))
    assert n.item() == (16000 - 400) // 160 + 1 == 98
    h, _ = fb(torch.randn(1, 16000), torch.tensor([16000]))
    torch.testing.assert_close(h.mean(2), torch.zeros(1, 1, 80), atol=1e-4, rtol=0)
    mf = build_frontend(FrontendConfig(frontend="mfcc", n_mfcc=80)).eval()
    x = torch.randn(1, 8000)
    a, _ = fb(x, torch.tensor([8000]))
    b, _ = mf(x, torch.tensor([8000]))
    torch.testing.assert_close(b, a @ mf.dct, atol=1e-4, rtol=1e-4)  # orthonormal DCT: norms preserved
    torch.testing.assert_close(b.norm(dim=-1), a.norm(dim=-1), atol=1e-3, rtol=1e-4)


def test_spec_augment_only_in_training():
    fr = build_frontend(FrontendConfig(frontend="fbank", spec_augment=True, time_mask=20, freq_mask=10))
    x = torch.randn(4, 16000)
    lengths = torch.full((4,), 16000)
    torch.manual_seed(0)
    fr.eval()
    clean, _ = fr(x, lengths)
    fr.train()
    aug, _ = fr(x, lengths)
    zeroed = (aug == 0) & (clean != 0)
    assert zeroed.any()
    assert torch.equal(aug[~zeroed], clean[~zeroed])
    fr.eval()
    assert torch.equal(fr(x, lengths)[0], clean)


def test_sincnet_filters_learn_and_checkpoint_round_trip(tmp_path):
    fr = build_frontend(FrontendConfig(frontend="sincnet"))
    assert fr.filters().shape == (80, 1, 251)
    h, _ = fr(torch.randn(2, 4000), torch.tensor([4000, 3000]))
    h.pow(2).mean().backward()
    assert fr.low_hz.grad is not None and fr.band_hz.grad.abs().sum() > 0
    for name in ("sincnet", "mfcc"):
        f = build_frontend(FrontendConfig(frontend=name))
        be = build_backend("SUPERB", f.num_layers, f.dim, embedding_dim=8, hidden_dim=8)
        m = SpeakerEncoder(f, be, name, "SUPERB", {"embedding_dim": 8, "hidden_dim": 8}).eval()
        save_model(m, tmp_path / name)
        from layersv import load_model

        x = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
        np.testing.assert_allclose(load_model(tmp_path / f"{name}.json").embed(x), m.embed(x), atol=1e-5)


def test_bad_settings_are_errors():
    with pytest.raises(ValueError, match="n_mfcc"):
        build_frontend(FrontendConfig(frontend="mfcc", n_mfcc=100))
    with pytest.raises(ValueError, match="odd"):
        build_frontend(FrontendConfig(frontend="sincnet", sinc_kernel=250))
    with pytest.raises(ValueError, match="available"):
        build_frontend(FrontendConfig(frontend="nope"))
