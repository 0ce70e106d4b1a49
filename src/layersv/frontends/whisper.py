"""Whisper's encoder as a multi-layer frontend (Radford et al. 2022, "Robust Speech Recognition via
Large-Scale Weak Supervision"), from log-mel features computed in torch, for clips of any length <= 30 s.

``(wav (B, S) at 16 kHz, wav_lengths (B,) samples)`` → ``(hidden (B, L, T, D), frame_lengths (B,))``
with hidden state 0 = the embeddings (conv stem + positional table), then one state per transformer
layer (the last one after the final layer norm, as ``transformers`` returns them): whisper-base gives
7 states of width 512.  Frames: 10 ms log-mel frames (``S // 160``), then a stride-2 convolution →
50 frames/s, ``T = ceil((S // 160) / 2)``.

**No 30 s padding.**  Whisper was trained on 30 s windows (1500 positions); ``transformers``'
``WhisperEncoder`` refuses anything else.  Here the sinusoidal-initialised, learned positional table
is *sliced* to the clip's T frames and padded frames are masked out of attention (and zeroed between
the two stem convolutions), so a padded batch gives each item its single-item states and a 3 s clip
costs 3/30 of the compute (quadratic attention: less).  The price: the model never saw a clip
without its trailing "silence" frames, so the states differ from those of the 30 s padded input
cropped to the clip's frames (a full 30 s clip gives identical states: tested).  Measured by
``bench/frontends.py`` on the real whisper-base, 12 synthetic 3-4 s clips: relative L2 difference per
hidden state 0..6 = 0.011 0.061 0.131 0.243 2.263 1.503 0.495 (layers 4-5 carry large-norm
dimensions that depend on the padding frames); cosine between sliced and padded mean-pooled states
1.000 0.999 0.992 0.990 0.939 0.971 0.962; correlation of the pairwise cosine scores between the two
ways 0.999 0.979 0.975 0.938 0.221 0.527 0.799.  So the early layers are nearly unchanged but the
deep layers are *different features*: a backend trained on sliced states must be used with sliced
states (checkpoints store ``pad_30s``), and ``pad_30s=True`` is the faithful-to-pretraining choice
when the deep layers matter more than speed.

Log-mel numerics follow ``WhisperFeatureExtractor`` (Hann 400 / hop 160 STFT, reflect-padded start,
zeros after the clip -- as in its 30 s zero padding --, last frame dropped, Slaney mel 0-8 kHz, log10
clamped at 1e-10, dynamic range max-8 per clip (over its valid frames), ``(x + 4) / 4``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers as tf
from torch.utils.checkpoint import checkpoint

from .ssl import from_pretrained_fp32

N_FFT, HOP, SR, MAX_SAMPLES = 400, 160, 16000, 480000

TINY_WHISPER = dict(d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128,
                    decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=128, num_mel_bins=80,
                    max_source_positions=1500, vocab_size=64, dropout=0.0, attention_dropout=0.0,
                    activation_dropout=0.0)


class WhisperLogMel(nn.Module):
    """Whisper log-mel spectrogram: ``(wav (B, S), lengths (B,))`` → ``(mel (B, n_mels, S // 160), frames (B,))``."""

    def __init__(self, n_mels: int = 80):
        super().__init__()
        from transformers.audio_utils import mel_filter_bank

        fb = mel_filter_bank(num_frequency_bins=1 + N_FFT // 2, num_mel_filters=n_mels, min_frequency=0.0,
                             max_frequency=8000.0, sampling_rate=SR, norm="slaney", mel_scale="slaney")
        self.register_buffer("filters", torch.from_numpy(np.asarray(fb, dtype=np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)
        self.n_mels = n_mels

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        wav = wav.float() * (torch.arange(wav.shape[1], device=wav.device)[None] < lengths[:, None])
        x = F.pad(F.pad(wav[:, None], (N_FFT // 2, 0), mode="reflect")[:, 0], (0, N_FFT // 2))
        spec = torch.stft(x, N_FFT, HOP, window=self.window, center=False, return_complex=True)
        power = spec[..., :-1].abs() ** 2  # (B, F, S // 160): the extractor drops the last frame
        mel = torch.clamp(self.filters.T @ power, min=1e-10).log10()
        frames = torch.div(lengths, HOP, rounding_mode="floor")
        valid = torch.arange(mel.shape[-1], device=mel.device)[None] < frames[:, None]  # (B, T)
        peak = mel.masked_fill(~valid[:, None], -torch.inf).amax(dim=(1, 2), keepdim=True)
        mel = (torch.maximum(mel, peak - 8.0) + 4.0) / 4.0
        return mel * valid[:, None], frames


def read_n_mels(source: str, hf_cfg) -> int:
    p = Path(source) / "preprocessor_config.json"
    n = json.loads(p.read_text()).get("feature_size", hf_cfg.num_mel_bins) if p.is_file() else hf_cfg.num_mel_bins
    if n != hf_cfg.num_mel_bins:
        raise ValueError(f"{source}: preprocessor feature_size {n} != model num_mel_bins {hf_cfg.num_mel_bins}")
    return int(n)


def load_whisper_encoder(source: str, use_pretrain: bool = True) -> nn.Module:
    """The encoder of a Whisper checkpoint (hub id / local directory) or ``tiny-whisper`` (random)."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    if source == "tiny-whisper":
        return WhisperEncoder(tf.WhisperConfig(**TINY_WHISPER))
    try:
        cfg = tf.AutoConfig.from_pretrained(source)
    except OSError as e:
        raise ValueError(f"cannot load Whisper config {source!r}: {e}") from None
    if cfg.model_type != "whisper":
        raise ValueError(f"{source!r} is a {cfg.model_type!r} model, not whisper (use frontend: ssl)")
    if not use_pretrain:
        return WhisperEncoder(cfg).float()
    return from_pretrained_fp32(tf.WhisperModel, source).get_encoder()


class WhisperFrontend(nn.Module):
    """All hidden states of a Whisper encoder.

    Args:
        encoder: a ``transformers`` WhisperEncoder.
        layers: hidden-state indices to keep (``None`` = all); keep_layer0: keep the embeddings state.
            The transformer layers above the last kept state are not run (``layers=[0, 1]`` costs the
            stem and one of whisper-base's six layers).
        freeze: no gradients, eval mode; pad_30s: pad every clip to 30 s as the original (no mask),
            then crop the states to the clip's frames -- for comparison, slow.
    """

    sample_rate = SR
    frame_rate = 50.0

    def __init__(self, encoder: nn.Module, layers: list[int] | None = None, keep_layer0: bool = True,
                 freeze: bool = False, pad_30s: bool = False):
        super().__init__()
        self.encoder = encoder
        self.logmel = WhisperLogMel(encoder.config.num_mel_bins)
        self.pad_30s = pad_30s
        n = encoder.config.encoder_layers
        ids = sorted(set(int(i) for i in layers)) if layers else list(range(n + 1))
        if any(i not in range(n + 1) for i in ids):
            raise ValueError(f"layers {ids} out of range 0..{n}")
        self.layer_ids = [i for i in ids if keep_layer0 or i != 0]
        if not self.layer_ids:
            raise ValueError("no hidden state left to return")
        self.frozen = False
        self.checkpointing = False
        if freeze:
            self.freeze()

    @property
    def num_layers(self) -> int:
        return len(self.layer_ids)

    @property
    def dim(self) -> int:
        return self.encoder.config.d_model

    def freeze(self) -> None:
        self.frozen = True
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder.eval()

    def unfreeze(self) -> None:
        self.frozen = False
        for p in self.encoder.parameters():
            p.requires_grad_(True)

    def gradient_checkpointing(self, enable: bool = True) -> None:
        self.checkpointing = enable

    def train(self, mode: bool = True) -> "WhisperFrontend":
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    @staticmethod
    def frame_lengths(wav_lengths: torch.Tensor) -> torch.Tensor:
        return (torch.div(wav_lengths, HOP, rounding_mode="floor") + 1) // 2

    def forward(self, wav: torch.Tensor, wav_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if wav.shape[1] > MAX_SAMPLES:
            raise ValueError(f"Whisper takes at most 30 s ({MAX_SAMPLES} samples), got {wav.shape[1]}")
        lengths = self.frame_lengths(wav_lengths)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden = self._states(wav, wav_lengths)
        return torch.stack([hidden[i] for i in self.layer_ids], dim=1), lengths

    def _states(self, wav: torch.Tensor, wav_lengths: torch.Tensor) -> list[torch.Tensor]:
        enc = self.encoder
        if self.pad_30s:  # the original recipe: zeros to 30 s, no mask, crop afterwards
            T_out = int(self.frame_lengths(wav_lengths).max())
            wav = F.pad(wav * (torch.arange(wav.shape[1], device=wav.device)[None] < wav_lengths[:, None]),
                        (0, MAX_SAMPLES - wav.shape[1]))
            mel, frames = self.logmel(wav, torch.full_like(wav_lengths, MAX_SAMPLES))  # = WhisperFeatureExtractor
            mask = None
        else:
            mel, frames = self.logmel(wav, wav_lengths)
            T_out = int(self.frame_lengths(wav_lengths).max())
            out_frames = self.frame_lengths(wav_lengths)
            mask = torch.arange((mel.shape[-1] + 1) // 2, device=wav.device)[None] < out_frames[:, None]
        x = F.gelu(enc.conv1(mel.to(enc.conv1.weight.dtype)))
        if mask is not None:  # the single-item run sees conv zero padding after its last frame
            x = x * (torch.arange(x.shape[-1], device=x.device)[None] < frames[:, None])[:, None]
        x = F.gelu(enc.conv2(x)).transpose(1, 2)  # (B, T, D)
        T = x.shape[1]
        x = x + enc.embed_positions.weight[:T]
        x = F.dropout(x, enc.dropout, self.training and not self.frozen)
        attn = None
        if mask is not None:
            attn = torch.zeros(mask.shape[0], 1, T, T, dtype=x.dtype, device=x.device)
            attn = attn.masked_fill(~mask[:, None, None, :], torch.finfo(x.dtype).min)
        states = [x]
        for layer in enc.layers[:max(self.layer_ids)]:  # the layers above the last kept state are not run
            if self.checkpointing and self.training and not self.frozen:
                x = checkpoint(layer, x, attn, use_reentrant=False)
            else:
                x = layer(x, attn)
            x = x[0] if isinstance(x, tuple) else x
            states.append(x)
        if len(states) == len(enc.layers) + 1:  # the last state comes after the final layer norm
            states[-1] = enc.layer_norm(x)
        return [s[:, :T_out] for s in states]

    def describe(self) -> dict:
        return {"hf_config": self.encoder.config.to_dict(), "layer_ids": self.layer_ids, "pad_30s": self.pad_30s}

    @classmethod
    def from_description(cls, d: dict) -> "WhisperFrontend":
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        cfg = tf.WhisperConfig.from_dict(d["hf_config"])
        return cls(WhisperEncoder(cfg), layers=d["layer_ids"], pad_30s=d.get("pad_30s", False))
