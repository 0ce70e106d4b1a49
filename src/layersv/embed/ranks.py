"""Evaluation embeddings shared by the ranks of a ``torchrun`` job (``layersv eval`` under torchrun).

Rank 0 runs the evaluation as in one process (cache look-ups, scoring, reports); each time it needs
embeddings it does not hold, it broadcasts a request ``(mode, set name, dataset root, sorted keys,
their AudioInfo)``; every rank embeds its shard ``keys[rank::W]`` (a deterministic split of the
sorted list) with its own copy of the model, and the ``(n_r, E)`` parts are gathered and merged into
``Embeddings`` ``(N, E)`` sorted by key.  The other ranks only serve requests (:func:`serve`) until
rank 0 says stop (:func:`drive`, also on an error).  ``mode``: ``waveform`` (audio → model) or
``features`` (the frozen encoder's feature cache → backend), as rank 0 decided.
Embeddings equal those of one process up to float rounding (other batches, other padding).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import distributed as dist
from ..data.dataset_folder import open_dataset
from .batches import Embeddings


def shard(keys: list[str]) -> list[str]:
    """This rank's share of ``keys``: every W-th of the sorted list, from position ``rank``."""
    return sorted(set(keys))[dist.rank() :: dist.world_size()]


def merge(parts: list[Embeddings | None]) -> Embeddings:
    """Per-rank ``Embeddings`` (None for an empty share) → one, rows sorted by key."""
    parts = [p for p in parts if p is not None and p.keys]
    ks = [k for p in parts for k in p.keys]
    order = np.argsort(np.asarray(ks), kind="stable")
    mat = np.concatenate([p.matrix for p in parts])[order]
    norms = np.concatenate([p.raw_norms for p in parts])[order]
    return Embeddings([ks[i] for i in order], mat, norms)


def _embed_share(embedder, request: tuple, ds=None) -> Embeddings:
    mode, set_name, root, keys, infos = request

    def mine():
        ks = shard(keys)
        return embedder.extract_local(mode, set_name, ds or open_dataset(root, need_train=False), ks, infos) \
            if ks else None

    return merge(dist.all_or_raise(mine))


def embed_on_ranks(embedder, mode: str, set_name: str, ds, keys: list[str], infos: dict) -> Embeddings:
    """Rank 0: the embeddings of ``keys``, each rank computing its shard (``embedder.extract_local``)."""
    keys = sorted(set(keys))
    request = (mode, set_name, str(ds.root), keys, {k: infos[k] for k in keys} if mode == "waveform" else {})
    dist.broadcast_object(request)
    return _embed_share(embedder, request, ds)


def serve(embedder) -> None:
    """Ranks > 0: embed the shards rank 0 asks for, until it sends None."""
    while (request := dist.broadcast_object(None)) is not None:
        _embed_share(embedder, request)


def drive(fn: Callable[[], Any]) -> Any:
    """Rank 0: ``fn()`` (which may call :func:`embed_on_ranks`), then release the serving ranks."""
    try:
        return fn()
    finally:
        dist.broadcast_object(None)
