"""Embeddings from cached hidden states: a backend over a frozen encoder's feature cache.

The cache (:class:`layersv.frontends.cache.FeatureCache`, ``layersv cache``) holds ``(L, T, D)`` per
utterance; :func:`hidden_state_embeddings` batches them ``(B, L, T, D)`` + frame lengths ``(B,)`` through
the backend alone → unit-norm ``(N, E)``, as the whole model would from the waveforms (within the
cache's dtype precision: fp16 gives ~1e-3).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.dataset import length_buckets
from ..frontends.cache import FeatureCache, collate_hidden
from .batches import Embeddings


@torch.no_grad()
def hidden_state_embeddings(backend: nn.Module, cache: FeatureCache, keys: list[str], batch_frames: int = 6000,
                            max_frames: int = 0, device: str = "cpu") -> Embeddings:
    """Run ``backend`` on cached hidden states ``(L, T, D)`` of ``keys`` (the first ``max_frames`` if > 0),
    in length-bucketed batches of at most ``batch_frames`` frames → :class:`Embeddings` sorted by key.

    The frontend never runs: evaluating N backends of one frozen encoder encodes the audio once.
    """
    keys = sorted(set(keys))
    n = [min(cache.frames(k), max_frames) if max_frames else cache.frames(k) for k in keys]
    was = backend.training
    backend.eval()
    out_k, embs, norms = [], [], []
    for idx in length_buckets([float(x) for x in n], float(batch_frames)):
        b = collate_hidden([(cache.get(keys[i], 0, n[i]), -1, keys[i]) for i in idx])
        e = backend(b.wav.to(device), b.lengths.to(device)).float().cpu()
        norms.append(e.norm(dim=-1))
        embs.append(F.normalize(e, dim=-1))
        out_k += b.keys
    backend.train(was)
    order = np.argsort(np.asarray(out_k))
    mat, nrm = torch.cat(embs).numpy(), torch.cat(norms).numpy()
    return Embeddings([out_k[i] for i in order], mat[order], nrm[order])
