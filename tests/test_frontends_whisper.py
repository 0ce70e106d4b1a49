"""Whisper frontend: torch log-mel vs WhisperFeatureExtractor, sliced positions, masks, the real checkpoint."""

from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tf

from layersv.backends import build_backend
from layersv.config import FrontendConfig
from layersv.frontends import build_frontend
from layersv.frontends.whisper import WhisperFrontend, WhisperLogMel, load_whisper_encoder
from layersv.model import SpeakerEncoder, save_model

WHISPER_BASE = Path(__file__).resolve().parents[1].parent.parent / "shared" / "models" / "whisper-base"
if not WHISPER_BASE.is_dir():
    WHISPER_BASE = Path("/work/shared/models/whisper-base")


def speechlike(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 8))
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(n)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_logmel_matches_whisper_feature_extractor(n_mels):
    wav = speechlike(3 * 16000 + 123)
    fe = tf.WhisperFeatureExtractor(feature_size=n_mels)
    ref = fe(wav, sampling_rate=16000, return_tensors="np").input_features[0]  # (n_mels, 3000), 30 s padded
    mel, frames = WhisperLogMel(n_mels)(torch.from_numpy(wav)[None], torch.tensor([len(wav)]))
    assert frames.item() == len(wav) // 160 == mel.shape[-1]
    np.testing.assert_allclose(mel[0].numpy(), ref[:, : frames.item()], atol=2e-3)
    # full 30 s padding reproduces the extractor everywhere
    padded = torch.zeros(1, 480000)
    padded[0, : len(wav)] = torch.from_numpy(wav)
    mel30, _ = WhisperLogMel(n_mels)(padded, torch.tensor([480000]))
    np.testing.assert_allclose(mel30[0].numpy(), ref, atol=2e-3)


def test_tiny_whisper_shapes_lengths_and_padding():
    torch.manual_seed(0)
    fr = WhisperFrontend(load_whisper_encoder("tiny-whisper")).eval()
    wav = torch.randn(3, 32000) * 0.1
    lengths = torch.tensor([32000, 20000, 9000])
    with torch.no_grad():
        hb, lb = fr(wav, lengths)
        assert hb.shape == (3, 3, 100, 64) and lb.tolist() == [100, 63, 28]
        for i in range(3):
            hs, ls = fr(wav[i : i + 1, : lengths[i]], lengths[i : i + 1])
            assert hs.shape[2] == ls.item() == lb[i].item()
            torch.testing.assert_close(hb[i : i + 1, :, : ls.item()], hs, rtol=1e-4, atol=1e-4)


def test_layer_subset_equals_full_states_and_skips_the_layers_above():
    torch.manual_seed(0)
    enc = load_whisper_encoder("tiny-whisper").eval()
    wav, n = torch.from_numpy(speechlike(16000))[None], torch.tensor([16000])
    with torch.no_grad():
        full, _ = WhisperFrontend(enc).eval()(wav, n)  # 3 states: embeddings, layer 1, layer 2 + norm
        calls = []
        hook = enc.layers[1].register_forward_hook(lambda *a: calls.append(1))
        low, _ = WhisperFrontend(enc, layers=[0, 1]).eval()(wav, n)
        assert calls == []  # the second transformer layer never ran
        top, _ = WhisperFrontend(enc, layers=[2]).eval()(wav, n)
        assert calls == [1]
        hook.remove()
    torch.testing.assert_close(low, full[:, :2])
    torch.testing.assert_close(top, full[:, 2:])


def test_pad_30s_mode_equals_transformers_encoder():
    torch.manual_seed(0)
    enc = load_whisper_encoder("tiny-whisper").eval()
    wav = torch.from_numpy(speechlike(16000))[None]
    fr = WhisperFrontend(enc, pad_30s=True).eval()
    with torch.no_grad():
        h, n = fr(wav, torch.tensor([16000]))
        feats = tf.WhisperFeatureExtractor()(wav[0].numpy(), sampling_rate=16000, return_tensors="pt").input_features
        ref = enc(feats, output_hidden_states=True).hidden_states
    assert len(ref) == h.shape[1] == 3 and n.item() == 50
    for i in range(3):
        torch.testing.assert_close(h[0, i], ref[i][0, :50], rtol=1e-3, atol=1e-3)


def test_frozen_no_grads_checkpointing_and_checkpoint_round_trip(tmp_path):
    fr = build_frontend(FrontendConfig(frontend="whisper", backbone_cfg="tiny-whisper", frz_pretrain=True,
                                       layers=[1, 2])).train()
    h, _ = fr(torch.randn(1, 8000), torch.tensor([8000]))
    assert not h.requires_grad and fr.num_layers == 2
    fr2 = build_frontend(FrontendConfig(frontend="whisper", backbone_cfg="tiny-whisper",
                                        grad_checkpointing=True)).train()
    fr2(torch.randn(2, 8000), torch.tensor([8000, 5000]))[0].sum().backward()
    assert fr2.encoder.layers[0].fc1.weight.grad is not None
    be = build_backend("SUPERB", fr.num_layers, fr.dim, embedding_dim=16, hidden_dim=16)
    model = SpeakerEncoder(fr, be, "whisper", "SUPERB", {"embedding_dim": 16, "hidden_dim": 16}).eval()
    save_model(model, tmp_path / "m")
    from layersv import load_model

    again = load_model(tmp_path / "m")
    x = np.random.default_rng(0).standard_normal(12000).astype(np.float32) * 0.1
    np.testing.assert_allclose(model.embed(x), again.embed(x), atol=1e-5)


def test_whisper_rejects_over_30s_and_wrong_family():
    fr = WhisperFrontend(load_whisper_encoder("tiny-whisper"))
    with pytest.raises(ValueError, match="30 s"):
        fr(torch.zeros(1, 480001), torch.tensor([480001]))


@pytest.mark.skipif(not WHISPER_BASE.is_dir(), reason="whisper-base checkpoint absent")
def test_real_whisper_base_checkpoint():
    fr = build_frontend(FrontendConfig(frontend="whisper", backbone_cfg=str(WHISPER_BASE), frz_pretrain=True))
    wav = torch.from_numpy(speechlike(2 * 16000))[None]
    with torch.no_grad():
        h, n = fr(wav, torch.tensor([32000]))
    assert h.shape == (1, 7, 100, 512) and n.item() == 100 and torch.isfinite(h).all()
    fe = tf.WhisperFeatureExtractor.from_pretrained(str(WHISPER_BASE))
    ref = fe(wav[0].numpy(), sampling_rate=16000, return_tensors="np").input_features[0]
    mel, _ = fr.logmel(wav, torch.tensor([32000]))
    np.testing.assert_allclose(mel[0].numpy(), ref[:, :200], atol=2e-3)


@pytest.mark.skipif(not WHISPER_BASE.is_dir(), reason="whisper-base checkpoint absent")
def test_real_checkpoint_loads_float32_and_trains_a_backend():
    """whisper-base's config says float16: the encoder is loaded in float32 on a CPU (fp16 there is
    several times slower and a float32 backend on Half states fails), and a trainable layer-wise
    backend (LAP, whose first op is a per-layer linear) runs forward and backward on it."""
    from layersv.config import Config
    from layersv.model import build_model

    cfg = Config()
    cfg.frontend = FrontendConfig(frontend="whisper", backbone_cfg=str(WHISPER_BASE), frz_pretrain=True)
    cfg.model.model, cfg.model.args = "LAP", {"embedding_dim": 64}
    model = build_model(cfg)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    wav = torch.from_numpy(speechlike(16000))[None].repeat(2, 1)
    emb = model(wav, torch.tensor([16000, 12000]))
    assert emb.shape == (2, 64) and torch.isfinite(emb).all()
    emb.sum().backward()
    assert all(p.grad is not None for p in model.backend.parameters() if p.requires_grad)


def test_sliced_equals_padded_for_a_full_30s_clip():
    """The only difference of slicing is the missing padding context: a 30 s clip gives the same states."""
    torch.manual_seed(0)
    enc = load_whisper_encoder("tiny-whisper").eval()
    wav = torch.from_numpy(np.tile(speechlike(48000), 10))[None]
    n = torch.tensor([480000])
    with torch.no_grad():
        a, la = WhisperFrontend(enc)(wav, n)
        b, lb = WhisperFrontend(enc, pad_30s=True)(wav, n)
    assert a.shape == b.shape == (1, 3, 1500, 64) and la.item() == lb.item() == 1500
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
