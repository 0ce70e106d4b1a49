"""SSL frontends: every tiny family -- shapes/lengths, layer subsets, freezing, padded batch == single."""

import pytest
import torch

from layersv.config import FrontendConfig
from layersv.frontends import build_frontend
from layersv.frontends.ssl import (FAMILIES, TINY, SSLFrontend, batch_invariant, family_of, load_hf_encoder,
                                  supports_attention_mask)

torch.manual_seed(0)


@pytest.mark.parametrize("source", sorted(TINY))
def test_every_family_shapes_lengths_and_class(source):
    enc, norm = load_hf_encoder(source)
    assert enc.config.model_type == family_of(source)
    assert type(enc).__name__ == FAMILIES[family_of(source)][1]  # the family's own class
    fr = SSLFrontend(enc, do_normalize=norm, keep_layer0=False, layers=[0, 2, 4]).eval()
    assert fr.layer_ids == [2, 4]
    hidden, lengths = fr(torch.randn(2, 16000) * 0.1, torch.tensor([16000, 8000]))
    assert hidden.shape == (2, 2, 49, fr.dim)
    assert lengths.tolist() == [49, 24]


@pytest.mark.parametrize("source", sorted(TINY))
def test_frozen_means_no_gradients_and_cnn_freeze(source):
    enc, _ = load_hf_encoder(source)
    fr = SSLFrontend(enc, freeze=True).train()
    h, _ = fr(torch.randn(1, 4000), torch.tensor([4000]))
    assert not h.requires_grad and not any(p.requires_grad for p in fr.parameters())
    fr.unfreeze(freeze_cnn=True)
    h, _ = fr(torch.randn(1, 4000), torch.tensor([4000]))
    h.sum().backward()
    assert all(p.grad is None for p in fr.encoder.feature_extractor.parameters())
    assert any(p.grad is not None for n, p in fr.encoder.named_parameters() if "encoder.layers" in n)


# Exact batch invariance needs an attention mask and no convolution over padded frames after the mask:
# see ssl.supports_attention_mask (data2vec-audio, conformer) -- those are batched by similar lengths.
MASKED = [s for s in sorted(TINY) if batch_invariant(load_hf_encoder(s)[0].config)]


@pytest.mark.parametrize("source", MASKED)
def test_padded_batch_equals_single(source):

    enc, norm = load_hf_encoder(source)
    fr = SSLFrontend(enc, do_normalize=norm).eval()
    wav = torch.randn(3, 12000) * 0.1
    lengths = torch.tensor([12000, 9000, 5000])
    with torch.no_grad():
        hb, lb = fr(wav, lengths)
        for i in range(3):
            hs, ls = fr(wav[i : i + 1, : lengths[i]], lengths[i : i + 1])
            assert ls.item() == lb[i].item()
            torch.testing.assert_close(hb[i : i + 1, :, : ls.item()], hs, rtol=1e-3, atol=1e-3)


def test_group_norm_families_get_no_attention_mask():
    assert not supports_attention_mask(load_hf_encoder("tiny-wav2vec2")[0].config)
    assert not supports_attention_mask(load_hf_encoder("tiny-hubert")[0].config)
    assert type(load_hf_encoder("tiny-hubert")[0]).__name__ == "HubertModel"  # not the wav2vec2 class (LAP bug)


def test_gradient_checkpointing_same_gradients():
    cfg = FrontendConfig(backbone_cfg="tiny-wavlm", frz_cnn=True)
    torch.manual_seed(1)
    a = build_frontend(cfg).train()
    b = build_frontend(FrontendConfig(backbone_cfg="tiny-wavlm", frz_cnn=True, grad_checkpointing=True)).train()
    b.load_state_dict(a.state_dict())
    assert b.encoder.is_gradient_checkpointing
    wav = torch.randn(2, 8000) * 0.1
    for m in (a, b):
        m.encoder.config.mask_time_prob = 0.0
        m(wav, torch.tensor([8000, 6000]))[0].pow(2).mean().backward()
    ga = [p.grad for p in a.parameters() if p.grad is not None]
    gb = [p.grad for p in b.parameters() if p.grad is not None]
    assert len(ga) == len(gb) > 0
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_empty_layer_selection_is_an_error():
    enc, _ = load_hf_encoder("tiny-wavlm")
    with pytest.raises(ValueError, match="no hidden state"):
        SSLFrontend(enc, layers=[0], keep_layer0=False)
