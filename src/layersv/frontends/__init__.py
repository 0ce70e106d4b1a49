"""Frontends: waveforms ``(B, S)`` + lengths → ``(hidden (B, L, T, D), frame lengths (B,))``.

``FRONTENDS`` maps a name to a factory ``build(cfg: FrontendConfig) -> nn.Module`` and
``FRONTEND_LOADERS`` maps it to ``from_description(d) -> nn.Module`` (checkpoint rebuild).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch.nn as nn

from ..config import FrontendConfig
from .fbank import FbankFrontend
from .sincnet import SincFrontend
from .ssl import SSLFrontend, load_hf_encoder
from .whisper import WhisperFrontend, load_whisper_encoder


def build_ssl(cfg: FrontendConfig) -> SSLFrontend:
    encoder, do_norm = load_hf_encoder(cfg.backbone_cfg, cfg.use_pretrain)
    fr = SSLFrontend(encoder, do_normalize=do_norm and not cfg.raw_waveform, layers=list(cfg.layers) or None,
                     keep_layer0=cfg.keep_layer0, freeze=cfg.frz_pretrain, freeze_cnn=cfg.frz_cnn,
                     cls_token=cfg.cls_token)
    if cfg.grad_checkpointing and not cfg.frz_pretrain:
        fr.gradient_checkpointing(True)
    return fr


def build_whisper(cfg: FrontendConfig) -> WhisperFrontend:
    fr = WhisperFrontend(load_whisper_encoder(cfg.backbone_cfg, cfg.use_pretrain), layers=list(cfg.layers) or None,
                         keep_layer0=cfg.keep_layer0, freeze=cfg.frz_pretrain, pad_30s=cfg.pad_30s)
    if cfg.grad_checkpointing and not cfg.frz_pretrain:
        fr.gradient_checkpointing(True)
    return fr


FEAT_NORMS = {"mean": dict(mean_norm=True), "cmvn": dict(mean_norm=True, var_norm=True),
              "l2": dict(mean_norm=False, frame_l2=True), "none": dict(mean_norm=False)}


def build_fbank(cfg: FrontendConfig, n_mfcc: int = 0) -> FbankFrontend:
    if cfg.feat_norm not in FEAT_NORMS:
        raise ValueError(f"unknown feat_norm {cfg.feat_norm!r}; valid: {', '.join(FEAT_NORMS)}")
    return FbankFrontend(n_mels=cfg.n_mels, n_mfcc=n_mfcc, spec_augment=cfg.spec_augment,
                         time_mask=cfg.time_mask, freq_mask=cfg.freq_mask, n_time_masks=cfg.n_time_masks,
                         n_freq_masks=cfg.n_freq_masks, log_db=bool(n_mfcc) and cfg.mfcc_db,
                         **FEAT_NORMS[cfg.feat_norm])


def build_mfcc(cfg: FrontendConfig) -> FbankFrontend:
    return build_fbank(cfg, n_mfcc=cfg.n_mfcc)


def build_sincnet(cfg: FrontendConfig) -> SincFrontend:
    return SincFrontend(n_filters=cfg.sinc_filters, kernel=cfg.sinc_kernel, pool=cfg.sinc_pool)


FRONTENDS: dict[str, Callable[[FrontendConfig], nn.Module]] = {
    "ssl": build_ssl, "whisper": build_whisper, "fbank": build_fbank, "mfcc": build_mfcc, "sincnet": build_sincnet,
}
FRONTEND_LOADERS: dict[str, Callable[[dict], nn.Module]] = {
    "ssl": SSLFrontend.from_description, "whisper": WhisperFrontend.from_description,
    "fbank": FbankFrontend.from_description, "mfcc": FbankFrontend.from_description,
    "sincnet": SincFrontend.from_description,
}


def build_frontend(cfg: FrontendConfig) -> nn.Module:
    if cfg.frontend not in FRONTENDS:
        raise ValueError(f"unknown frontend {cfg.frontend!r}; available: {', '.join(sorted(FRONTENDS))}")
    return FRONTENDS[cfg.frontend](cfg)


def guess_frontend(backbone_cfg: str) -> str:
    """``--frontend auto``: ``whisper`` for Whisper checkpoints (by config.json model_type or name), else ``ssl``."""
    p = Path(backbone_cfg) / "config.json"
    if p.is_file():
        try:
            return "whisper" if json.loads(p.read_text()).get("model_type") == "whisper" else "ssl"
        except ValueError:
            pass
    return "whisper" if "whisper" in backbone_cfg.lower() else "ssl"
