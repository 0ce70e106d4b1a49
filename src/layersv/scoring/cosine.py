"""Cosine scoring of trials, optionally after subtracting a mean embedding (LAP's "naive" evaluation).

Scores are raw cosines in [-1, 1]; the seeds clamped them to [0, 1], which ties every
negative score at 0 and distorts EER/minDCF — not reproduced here.
"""

from __future__ import annotations

import numpy as np

from ..data.dataset_folder import Trials
from ..embed.batches import Embeddings


def cosine_scores(emb: Embeddings, trials: Trials, mean: np.ndarray | None = None,
                  chunk: int = 1_000_000) -> np.ndarray:
    """Cosine similarity of each trial's two embeddings → ``(N,)`` float64.

    ``mean (E,)``: subtracted from every embedding, which is then re-normalised.
    """
    m = emb.matrix.astype(np.float32)
    if mean is not None:
        m = m - mean[None, :].astype(np.float32)
        m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    a, b = emb.rows(trials.enroll), emb.rows(trials.test)
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), chunk):
        out[s : s + chunk] = np.einsum("ij,ij->i", m[a[s : s + chunk]], m[b[s : s + chunk]])
    return out
