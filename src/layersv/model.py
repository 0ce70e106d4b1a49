"""``SpeakerEncoder(frontend, backend)``: waveforms → speaker embeddings; self-describing checkpoints.

A checkpoint is ``<stem>.safetensors`` (weights) + ``<stem>.json`` (``{"format", "frontend":
{name, description}, "backend": {name, args, in_layers, in_dim}, ...}``) so that
:func:`load_model` rebuilds the encoder without the training config or the original
pretrained weights, and without unpickling anything (:mod:`layersv.checkpoint`).  The training
head is never part of the encoder (it is stored beside it, ``<stem>.head.safetensors``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .backends import build_backend
from .checkpoint import FORMAT as CHECKPOINT_FORMAT, read_checkpoint as _read_checkpoint, write_checkpoint
from .data.audio import resample
from .frontends import FRONTEND_LOADERS, build_frontend


class SpeakerEncoder(nn.Module):
    """Frontend + backend.

    ``forward(wav (B, S) float in [-1, 1] at ``sample_rate``, wav_lengths (B,) samples)``
    returns raw embeddings ``(B, E)``; :meth:`embed` returns L2-normalised ones.  A pure module: it
    reads no files (audio files of any length: :func:`layersv.embed.embed_file`).
    """

    def __init__(self, frontend: nn.Module, backend: nn.Module, frontend_name: str = "ssl",
                 backend_name: str = "", backend_args: dict | None = None):
        super().__init__()
        self.frontend = frontend
        self.backend = backend
        self.frontend_name = frontend_name
        self.backend_name = backend_name
        self.backend_args = dict(backend_args or {})

    @property
    def sample_rate(self) -> int:
        return int(getattr(self.frontend, "sample_rate", 16000))

    @property
    def embedding_dim(self) -> int:
        return int(self.backend.embedding_dim)

    def forward(self, wav: torch.Tensor, wav_lengths: torch.Tensor) -> torch.Tensor:
        hidden, lengths = self.frontend(wav, wav_lengths)
        if getattr(self.backend, "needs_waveform", False):  # e.g. WavLM-RawNetX reads the raw waveform too
            return self.backend(hidden, lengths, wav=wav, wav_lengths=wav_lengths)
        return self.backend(hidden, lengths)

    @torch.no_grad()
    def embed(self, wav: Any, sample_rate: int | None = None, lengths: torch.Tensor | None = None) -> np.ndarray:
        """L2-normalised embeddings.

        ``wav``: a 1-D array/tensor (one utterance) → ``(E,)``, or ``(B, S)`` with optional
        ``lengths`` → ``(B, E)``.  A different ``sample_rate`` is resampled to the model's.
        """
        was_training = self.training
        self.eval()
        x = torch.as_tensor(np.asarray(wav, dtype=np.float32) if not torch.is_tensor(wav) else wav).float()
        single = x.dim() == 1
        if x.dim() > 2:
            raise ValueError(f"embed expects (samples,) or (batch, samples), got shape {tuple(x.shape)}")
        if sample_rate is not None and sample_rate != self.sample_rate:
            if not single:
                raise ValueError("resampling is only done for a single 1-D waveform; resample batches first")
            x = torch.from_numpy(resample(x.numpy(), sample_rate, self.sample_rate))
        x = x[None] if single else x
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
        dev = next(self.parameters()).device
        e = F.normalize(self(x.to(dev), lengths.to(dev)).float(), dim=-1).cpu().numpy()
        self.train(was_training)
        return e[0] if single else e

    def describe(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "frontend": {"name": self.frontend_name, "description": self.frontend.describe()},
            "backend": {
                "name": self.backend_name, "args": self.backend_args,
                "in_layers": self.frontend.num_layers, "in_dim": self.frontend.dim,
            },
        }


def build_model(cfg) -> SpeakerEncoder:
    """Build a :class:`SpeakerEncoder` from a :class:`layersv.config.Config`."""
    frontend = build_frontend(cfg.frontend)
    backend = build_backend(cfg.model.model, frontend.num_layers, frontend.dim, **cfg.model.args)
    return SpeakerEncoder(frontend, backend, cfg.frontend.frontend, cfg.model.model, cfg.model.args)


def save_model(model: SpeakerEncoder, path: str | os.PathLike, head_state: dict | None = None,
               **extra: Any) -> Path:
    """Write ``<stem>.safetensors`` + ``<stem>.json`` (see :mod:`layersv.checkpoint`) → the JSON path.

    ``path``: the stem, or a name ending in ``.json`` / ``.safetensors`` / ``.pt`` (replaced);
    ``extra``: JSON-able entries stored in the description (step, validation figures, ...);
    ``head_state``: a training head's state dict, stored beside it (never loaded by :func:`load_model`).
    """
    model = getattr(model, "module", model)
    return write_checkpoint(model.describe(), model.state_dict(), path, head_state=head_state, **extra)


def read_checkpoint(path: str | os.PathLike, with_head: bool = False) -> dict:
    """Description + ``state_dict`` of a checkpoint (run folder → its best model); never unpickles."""
    return _read_checkpoint(path, with_head=with_head)


def model_from_checkpoint(ckpt: dict) -> SpeakerEncoder:
    fr = ckpt["frontend"]
    if fr["name"] not in FRONTEND_LOADERS:
        raise ValueError(f"checkpoint uses unknown frontend {fr['name']!r}")
    frontend = FRONTEND_LOADERS[fr["name"]](fr["description"])
    be = ckpt["backend"]
    backend = build_backend(be["name"], be["in_layers"], be["in_dim"], **be["args"])
    model = SpeakerEncoder(frontend, backend, fr["name"], be["name"], be["args"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def load_model(path: str | os.PathLike, device: str = "cpu") -> SpeakerEncoder:
    """Rebuild a trained encoder (eval mode) from a run folder, a model folder or a checkpoint file.

    Reads only JSON and safetensors; an old pickled ``.pt`` checkpoint raises
    :class:`layersv.checkpoint.LegacyCheckpointError` naming ``layersv convert RUN --trust``.
    """
    return model_from_checkpoint(read_checkpoint(path)).to(device)
