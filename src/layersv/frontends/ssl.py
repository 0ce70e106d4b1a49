"""Pretrained self-supervised speech encoders (wav2vec 2.0, HuBERT, WavLM, data2vec-audio, UniSpeech(-SAT),
wav2vec2-conformer) as frontends.

Wraps a Hugging Face ``transformers`` model and returns *all* its hidden states stacked:
``(wav (B, S), wav_lengths (B,))`` → ``(hidden (B, L, T, D), frame_lengths (B,))`` where
hidden state 0 is the input to the first transformer layer and 1..N the layer outputs.

Sources (``backbone_cfg``): a hub id or local directory (``from_pretrained``; offline
machines need a local directory or a filled HF cache), or ``tiny-<family>`` — a small random
model built from a config, for tests and the synthetic quick start (no download).
Every family gets its own model class (the LAP seed loaded HuBERT with the wav2vec2 class).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import transformers as tf

# model_type (config.json) → (config class, model class)
FAMILIES: dict[str, tuple[str, str]] = {
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model"),
    "hubert": ("HubertConfig", "HubertModel"),
    "wavlm": ("WavLMConfig", "WavLMModel"),
    "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioModel"),
    "unispeech-sat": ("UniSpeechSatConfig", "UniSpeechSatModel"),
    "unispeech": ("UniSpeechConfig", "UniSpeechModel"),
    "wav2vec2-conformer": ("Wav2Vec2ConformerConfig", "Wav2Vec2ConformerModel"),
}

TINY_COMMON = dict(
    hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
    conv_dim=(32, 32, 32, 32, 32, 32, 32), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
    hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
    layerdrop=0.0, mask_time_prob=0.0,
)
# Tiny random encoders: the real architectures at toy width (no download).
TINY: dict[str, tuple[str, dict[str, Any]]] = {
    "tiny-wavlm": ("wavlm", dict(TINY_COMMON, feat_extract_norm="layer", do_stable_layer_norm=True)),
    "tiny-wav2vec2": ("wav2vec2", dict(TINY_COMMON, feat_extract_norm="group", do_stable_layer_norm=False)),
    "tiny-hubert": ("hubert", dict(TINY_COMMON, feat_extract_norm="group", do_stable_layer_norm=False)),
    "tiny-data2vec": ("data2vec-audio", dict(TINY_COMMON, num_conv_pos_embeddings=5)),
    "tiny-unispeech-sat": ("unispeech-sat", dict(TINY_COMMON, feat_extract_norm="layer", do_stable_layer_norm=True)),
    "tiny-w2v2-conformer": ("wav2vec2-conformer", dict(TINY_COMMON, feat_extract_norm="layer",
                                                       position_embeddings_type="rotary",
                                                       conv_depthwise_kernel_size=7)),
}


def family_of(source: str) -> str:
    """The ``model_type`` of a tiny name, a local directory or a hub id (reads config.json only)."""
    if source in TINY:
        return TINY[source][0]
    return tf.AutoConfig.from_pretrained(source).model_type


def hf_config_from_dict(d: dict) -> tf.PretrainedConfig:
    model_type = d.get("model_type")
    if model_type not in FAMILIES:
        raise ValueError(f"unsupported encoder family {model_type!r}; supported: {', '.join(FAMILIES)}")
    return getattr(tf, FAMILIES[model_type][0]).from_dict(d)


def read_preprocessor_config(source: str) -> dict | None:
    """The checkpoint's ``preprocessor_config.json`` (local directory or HF cache), or None."""
    p = Path(source) / "preprocessor_config.json"
    if p.is_file():
        return json.loads(p.read_text())
    try:
        return tf.AutoFeatureExtractor.from_pretrained(source).to_dict()
    except Exception:
        return None


def batch_invariant(cfg: tf.PretrainedConfig) -> bool:
    """True when a zero-padded batch gives each item exactly its single-item hidden states."""
    return supports_attention_mask(cfg) and cfg.model_type not in ("data2vec-audio", "wav2vec2-conformer")


def supports_attention_mask(cfg: tf.PretrainedConfig) -> bool:
    """Group-norm CNN encoders (wav2vec2-base, HuBERT-base, ...) were trained without attention masks:
    their feature extractor says ``return_attention_mask: false`` -- pad with zeros, mask afterwards.
    data2vec-audio takes a mask but is not exactly batch-invariant: of its 5 stacked positional
    convolutions only the first input is zeroed at padded frames (as in fairseq), and the conformer's
    depthwise convolution module sees padded frames in every layer: see :func:`batch_invariant`."""
    return getattr(cfg, "feat_extract_norm", "layer") == "layer" or cfg.model_type in ("wavlm",)


def load_hf_encoder(source: str, use_pretrain: bool = True) -> tuple[nn.Module, bool]:
    """Build the encoder for ``source``; returns (model, do_normalize)."""
    if source in TINY:
        family, kw = TINY[source]
        cfg = getattr(tf, FAMILIES[family][0])(**kw)
        return getattr(tf, FAMILIES[family][1])(cfg), True
    if source.startswith("tiny-"):
        raise ValueError(f"unknown tiny encoder {source!r}; built-in: {', '.join(TINY)}")
    try:
        cfg = tf.AutoConfig.from_pretrained(source)
    except OSError as e:
        raise ValueError(
            f"cannot load encoder config {source!r}: {e}\n(no network? pass a local directory holding "
            "config.json and the weights, or a tiny-<family> encoder)"
        ) from None
    cfg_d = cfg.to_dict()
    model_cls = getattr(tf, FAMILIES[hf_config_from_dict(cfg_d).model_type][1])
    model = (from_pretrained_fp32(model_cls, source) if use_pretrain
             else model_cls(hf_config_from_dict(cfg_d)).float())
    pre = read_preprocessor_config(source)
    do_norm = bool(pre.get("do_normalize", False)) if pre else cfg.feat_extract_norm == "layer"
    return model, do_norm


def from_pretrained_fp32(model_cls, source: str) -> nn.Module:
    """``model_cls.from_pretrained(source)`` in float32, whatever dtype the checkpoint says.

    transformers >= 5 keeps a checkpoint's own dtype (many shared checkpoints say float16); on a
    CPU that is several times slower and mixes Half with float parameters of the backend. Lower
    precision is for autocast on a GPU (``--amp bf16``), never for the stored weights.
    """
    try:
        model = model_cls.from_pretrained(source, dtype=torch.float32)
    except TypeError:  # transformers < 4.56 names it torch_dtype
        model = model_cls.from_pretrained(source, torch_dtype=torch.float32)
    return model.float()


class SSLFrontend(nn.Module):
    """All hidden states of a transformers speech encoder, stacked.

    Args:
        encoder: a transformers Wav2Vec2/Hubert/WavLM/Data2VecAudio model.
        do_normalize: zero-mean unit-variance normalisation of each waveform over its
            valid samples (what the checkpoint's feature extractor does).
        layers: hidden-state indices to keep (``None`` = all).  Applied after ``keep_layer0``.
        keep_layer0: keep hidden state 0.
        freeze: freeze the whole encoder (eval mode, no gradients).
        freeze_cnn: freeze only the convolutional feature encoder.
        cls_token: FinetuneWV2 (Vaessen & van Leeuwen 2022): prepend a constant all-ones CLS vector
            to the projected CNN features, *inside* the pretrained model (before its positional
            convolution and transformer); frame 0 of every hidden state is then the CLS, and the
            returned lengths count it (frames + 1).
    """

    sample_rate = 16000

    def __init__(self, encoder: nn.Module, do_normalize: bool = True, layers: list[int] | None = None,
                 keep_layer0: bool = True, freeze: bool = False, freeze_cnn: bool = True, cls_token: bool = False):
        super().__init__()
        self.encoder = encoder
        self.do_normalize = do_normalize
        self.cls_token = cls_token
        if cls_token:
            encoder.encoder.register_forward_pre_hook(_prepend_cls, with_kwargs=True)
        cfg = encoder.config
        self.use_attention_mask = supports_attention_mask(cfg)
        all_idx = list(range(cfg.num_hidden_layers + 1))
        if layers:
            bad = [i for i in layers if i not in all_idx]
            if bad:
                raise ValueError(f"layers {bad} out of range 0..{cfg.num_hidden_layers}")
            all_idx = sorted(set(int(i) for i in layers))
        if not keep_layer0:
            all_idx = [i for i in all_idx if i != 0]
        if not all_idx:
            raise ValueError("no hidden state left to return (layers=[0] with keep_layer0=false)")
        self.layer_ids = all_idx
        self.frozen = False
        if freeze:
            self.freeze()
        elif freeze_cnn:
            self.freeze_cnn()

    @property
    def num_layers(self) -> int:
        return len(self.layer_ids)

    @property
    def dim(self) -> int:
        return self.encoder.config.hidden_size

    @property
    def frame_rate(self) -> float:
        stride = 1
        for s in self.encoder.config.conv_stride:
            stride *= s
        return self.sample_rate / stride

    def freeze(self) -> None:
        self.frozen = True
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder.eval()

    def freeze_cnn(self) -> None:
        """Freeze only the convolutional feature encoder (HubertModel lacks HF's helper for it)."""
        fe = self.encoder.feature_extractor
        for p in fe.parameters():
            p.requires_grad_(False)
        fe._requires_grad = False

    def unfreeze(self, freeze_cnn: bool = True) -> None:
        self.frozen = False
        for p in self.encoder.parameters():
            p.requires_grad_(True)
        self.encoder.feature_extractor._requires_grad = True
        if freeze_cnn:
            self.freeze_cnn()

    def train(self, mode: bool = True) -> "SSLFrontend":
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # no dropout in a frozen encoder
        return self

    def gradient_checkpointing(self, enable: bool = True) -> None:
        """Recompute transformer activations in the backward pass (joint fine-tuning of large encoders)."""
        if enable:
            self.encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            self.encoder.gradient_checkpointing_disable()

    def frame_lengths(self, wav_lengths: torch.Tensor) -> torch.Tensor:
        return self.encoder._get_feat_extract_output_lengths(wav_lengths).long() + int(self.cls_token)

    def forward(self, wav: torch.Tensor, wav_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = torch.arange(wav.shape[1], device=wav.device)[None] < wav_lengths[:, None]  # (B, S)
        wav = wav * mask
        if self.do_normalize:
            n = wav_lengths.clamp_min(1)[:, None].to(wav.dtype)
            mean = wav.sum(1, keepdim=True) / n
            var = ((wav - mean) ** 2 * mask).sum(1, keepdim=True) / n
            wav = (wav - mean) / torch.sqrt(var + 1e-7) * mask
        kwargs = {"attention_mask": mask.long()} if self.use_attention_mask else {}
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.encoder(wav, output_hidden_states=True, **kwargs)
        hidden = torch.stack([out.hidden_states[i] for i in self.layer_ids], dim=1)  # (B, L, T, D)
        lengths = self.frame_lengths(wav_lengths).clamp(max=hidden.shape[2])
        return hidden, lengths

    def describe(self) -> dict:
        """What ``load_model`` needs to rebuild this frontend without the original weights."""
        return {
            "hf_config": self.encoder.config.to_dict(), "do_normalize": self.do_normalize,
            "layer_ids": self.layer_ids, **({"cls_token": True} if self.cls_token else {}),
        }

    @classmethod
    def from_description(cls, d: dict) -> "SSLFrontend":
        cfg = hf_config_from_dict(d["hf_config"])
        encoder = getattr(tf, FAMILIES[cfg.model_type][1])(cfg)
        return cls(encoder, do_normalize=d["do_normalize"], layers=d["layer_ids"], keep_layer0=True,
                   freeze=False, freeze_cnn=False, cls_token=bool(d.get("cls_token", False)))


def _prepend_cls(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Forward pre-hook of the HF transformer encoder: ``hidden (B, T, D)`` → ``(B, 1 + T, D)`` with an
    all-ones CLS first (FinetuneWV2's seed); the frame attention mask, when given, gains a valid column."""
    h = args[0] if args else kwargs.pop("hidden_states")
    h = torch.cat([torch.ones_like(h[:, :1]), h], 1)
    m = kwargs.get("attention_mask")
    if m is not None:
        kwargs["attention_mask"] = torch.cat([torch.ones_like(m[:, :1]), m], 1)
    return (h,) + tuple(args[1:]), kwargs
