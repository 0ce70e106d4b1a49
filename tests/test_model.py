"""Frontend lengths, padded-vs-single through the whole encoder, self-describing checkpoints."""

import numpy as np
import pytest
import torch

import layersv
from layersv.backends import build_backend
from layersv.frontends.ssl import TINY, SSLFrontend, load_hf_encoder
from layersv.model import SpeakerEncoder, save_model


def tiny_encoder(source="tiny-wavlm", **kw):
    torch.manual_seed(0)
    enc, norm = load_hf_encoder(source)
    fr = SSLFrontend(enc, do_normalize=norm, **kw)
    be = build_backend("SUPERB", fr.num_layers, fr.dim, embedding_dim=24, hidden_dim=16)
    return SpeakerEncoder(fr, be, "ssl", "SUPERB", {"embedding_dim": 24, "hidden_dim": 16}).eval()


@pytest.mark.parametrize("source", sorted(TINY))
def test_frontend_shapes_and_lengths(source):
    enc, norm = load_hf_encoder(source)
    fr = SSLFrontend(enc, do_normalize=norm).eval()
    wav = torch.randn(2, 16000)
    hidden, lengths = fr(wav, torch.tensor([16000, 8000]))
    assert hidden.shape[:2] == (2, enc.config.num_hidden_layers + 1) and hidden.shape[-1] == fr.dim
    assert lengths.tolist() == [49, 24]  # 20 ms frames, 25 ms receptive field
    assert fr.frame_rate == 50.0


def test_layer_selection_and_layer0():
    enc, _ = load_hf_encoder("tiny-wavlm")
    assert SSLFrontend(enc, keep_layer0=False).num_layers == enc.config.num_hidden_layers
    assert SSLFrontend(enc, layers=[1, 3]).layer_ids == [1, 3]
    with pytest.raises(ValueError, match="out of range"):
        SSLFrontend(enc, layers=[99])


def test_frozen_frontend_has_no_gradients():
    enc, _ = load_hf_encoder("tiny-wavlm")
    fr = SSLFrontend(enc, freeze=True).train()
    assert not any(p.requires_grad for p in fr.parameters())
    assert not fr.encoder.training


def test_padded_batch_equals_single_through_the_encoder():
    model = tiny_encoder()
    wav = torch.randn(3, 24000) * 0.1
    lengths = torch.tensor([24000, 17000, 9000])
    with torch.no_grad():
        batch = model(wav, lengths)
        for i in range(3):
            single = model(wav[i : i + 1, : lengths[i]], lengths[i : i + 1])
            torch.testing.assert_close(batch[i : i + 1], single, rtol=2e-3, atol=2e-3)


def test_checkpoint_round_trip(tmp_path):
    model = tiny_encoder(layers=[0, 2, 4])
    path = save_model(model, tmp_path / "m", step=3)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.json", "m.safetensors"]
    again = layersv.load_model(path)
    wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    e1, e2 = model.embed(wav), again.embed(wav)
    np.testing.assert_allclose(e1, e2, rtol=1e-5, atol=1e-6)
    assert e1.shape == (24,) and np.linalg.norm(e1) == pytest.approx(1.0, abs=1e-5)
    assert again.frontend.layer_ids == [0, 2, 4]
    # other sample rates are resampled; batches give (B, E)
    assert again.embed(wav[::2], sample_rate=8000).shape == (24,)
    assert again.embed(np.stack([wav, wav])).shape == (2, 24)


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        layersv.load_model(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")  # any .pt is refused unread, as a possible pickle
    with pytest.raises(ValueError, match="layersv convert"):
        layersv.load_model(tmp_path / "bad.pt")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable checkpoint description"):
        layersv.load_model(tmp_path / "bad.json")
    model = tiny_encoder()
    path = save_model(model, tmp_path / "ok")
    w = tmp_path / "ok.safetensors"
    w.write_bytes(w.read_bytes()[:-100])  # truncated weights: the checksum in the JSON says so
    with pytest.raises(ValueError, match="checksum mismatch"):
        layersv.load_model(path)
