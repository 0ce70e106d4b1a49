"""Training-free backend: masked mean + std of every input hidden state, concatenated, whitened.

No gradient training: the embedding of an utterance is its per-layer frame statistics
(``(batch, layers, frames, dim)`` → mean and standard deviation over valid frames →
``(batch, layers · 2 · dim)``), centred and multiplied by a whitening transform fitted on the
training set (PCA whitening, plus LDA when training speakers have several recordings; see
:mod:`layersv.whitening`), then L2-normalised -- cosine scoring of these embeddings is the
classic "statistics + whitening" baseline (e.g. the per-layer probes of Chen et al., "WavLM",
IEEE JSTSP 2022, and the layer-wise analyses of Pasad et al., ASRU 2021, with a trained probe
replaced by a closed-form transform).

The transform lives in two registered buffers (``mean (F,)``, ``transform (F, E)``), so a
checkpoint holds it and :func:`layersv.model.load_model` rebuilds the backend like any other;
``embedding_dim`` (E) is a constructor argument, known once :meth:`Stats.fit_whitening` ran.
PLDA is not implemented: cosine scoring of whitened/LDA vectors is used.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..whitening import fit_whitening
from .layers import lengths_to_mask, masked_mean_std


def utterance_stats(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``hidden (B, L, T, D)``, ``lengths (B,)`` → ``(B, L, 2D)``: per-layer masked mean ‖ std (float32)."""
    b, n_layers, t, d = hidden.shape
    mask = lengths_to_mask(lengths, t)
    x = hidden.float().reshape(b * n_layers, t, d).transpose(1, 2)  # (B·L, D, T)
    mean, std = masked_mean_std(x, mask.repeat_interleave(n_layers, 0))
    return torch.cat([mean, std], -1).reshape(b, n_layers, 2 * d)


class Stats(nn.Module):
    """Statistics of all input hidden states + a fitted whitening transform; L2-normalised output.

    Args:
        in_layers: L hidden states of the input ``(B, L, T, D)`` (choose them with the frontend's
            ``layers``; ``layersv train DATA Stats --layers auto`` picks them with the probe).
        in_dim: D.
        embedding_dim: E, the output size of the fitted transform (0 = not fitted yet: identity,
            E = 2 · L · D).
        pca_dim / lda / lda_dim: how :meth:`fit_whitening` fits the transform (0 = as many as the
            data supports; LDA only when speakers have >= 2 training vectors).
    Returns ``(B, E)`` unit-norm embeddings.

    ``trainable = False``: :func:`layersv.runs.fit` fits it (:mod:`layersv.runs.stats`) instead of
    running the gradient loop.
    """

    trainable = False  # fitted in closed form by layersv.runs.stats, never by gradient steps

    def __init__(self, in_layers: int, in_dim: int, embedding_dim: int = 0, pca_dim: int = 0, lda: bool = True,
                 lda_dim: int = 0):
        super().__init__()
        self.in_features = 2 * in_layers * in_dim
        self.pca_dim, self.lda, self.lda_dim = pca_dim, lda, lda_dim
        self.register_buffer("mean", torch.zeros(self.in_features))
        # not fitted: an empty transform stands for the identity (no F x F matrix is allocated)
        self.register_buffer("transform", torch.zeros(self.in_features, embedding_dim) if embedding_dim
                             else torch.zeros(0))
        self.embedding_dim = embedding_dim or self.in_features
        self.kind = "identity"

    def statistics(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, L·2D)`` concatenated per-layer statistics (the input of the transform)."""
        return utterance_stats(hidden, lengths).flatten(1)

    def project(self, stats: torch.Tensor) -> torch.Tensor:
        """``(B, L·2D)`` statistics → ``(B, E)`` unit-norm whitened embeddings."""
        x = stats.float() - self.mean
        return F.normalize(x @ self.transform if self.transform.numel() else x, dim=-1)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.project(self.statistics(hidden, lengths))

    def fit_whitening(self, stats: np.ndarray, speakers: list[str]) -> str:
        """Fit the transform on training statistics ``(N, L·2D)`` (from :meth:`statistics`); returns its kind."""
        stats = np.asarray(stats)
        if stats.ndim != 2 or stats.shape[1] != self.in_features:
            raise ValueError(f"fit_whitening expects (N, {self.in_features}) statistics, got {stats.shape}")
        w = fit_whitening(stats, speakers, pca_dim=self.pca_dim, lda=self.lda, lda_dim=self.lda_dim)
        dev = self.mean.device
        self.mean = torch.as_tensor(w.mean, dtype=torch.float32, device=dev)
        self.transform = torch.as_tensor(w.transform, dtype=torch.float32, device=dev)
        self.embedding_dim = int(w.transform.shape[1])
        self.kind = w.kind
        return w.kind
