"""Batched embedding extraction of full utterances, length-bucketed (not batch 1 as in the seeds).

:class:`Embeddings` is the one container every road returns: ``keys`` (N,) + unit-norm ``matrix (N, E)``.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .. import distributed as dist
from ..data.audio import AudioInfo
from ..data.dataset import ListSampler, Utterances, collate, length_buckets
from ..data.dataset_folder import DatasetFolder
from ..utils import atomic_write_bytes


class Embeddings:
    """``keys`` (N,) and L2-normalised ``matrix (N, E)``; ``index[key]`` → row."""

    def __init__(self, keys: list[str], matrix: np.ndarray, raw_norms: np.ndarray | None = None):
        self.keys = list(keys)
        self.matrix = matrix.astype(np.float32)
        self.raw_norms = raw_norms
        self.index = {k: i for i, k in enumerate(self.keys)}

    def rows(self, keys: list[str]) -> np.ndarray:
        return np.fromiter((self.index[k] for k in keys), dtype=np.int64, count=len(keys))

    def save(self, path) -> None:
        buf = io.BytesIO()
        np.savez(buf, keys=np.asarray(self.keys), matrix=self.matrix,
                 raw_norms=self.raw_norms if self.raw_norms is not None else np.zeros(0))
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path) -> "Embeddings":
        z = np.load(path, allow_pickle=False)
        norms = z["raw_norms"] if z["raw_norms"].size else None
        return cls([str(k) for k in z["keys"]], z["matrix"], norms)


@torch.no_grad()
def extract_embeddings(model: torch.nn.Module, ds: DatasetFolder, keys: list[str], infos: dict[str, AudioInfo],
                       batch_sec: float = 120.0, max_sec: float = 0.0, device: str = "cpu", workers: int = 0,
                       progress: bool = True, desc: str = "embed", distributed: bool = False) -> Embeddings:
    """Embed every utterance in ``keys`` (relative paths) with ``model`` in eval mode.

    Utterances are sorted by duration and batched so that ``batch · longest ≤ batch_sec``
    seconds; ``max_sec`` > 0 keeps only the first ``max_sec`` seconds of each.  With
    ``distributed`` under torchrun, each rank embeds its share and the results are gathered.
    """
    keys = sorted(set(keys))
    if distributed and dist.world_size() > 1:
        part = extract_embeddings(model, ds, keys[dist.rank() :: dist.world_size()], infos, batch_sec, max_sec, device,
                                  workers, progress, desc)
        parts = dist.gather_objects((part.keys, part.matrix, part.raw_norms))
        ks = [k for p in parts for k in p[0]]
        order = np.argsort(np.asarray(ks))
        mat, nrm = np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
        return Embeddings([ks[i] for i in order], mat[order], nrm[order])
    if not keys:
        return Embeddings([], np.zeros((0, model.embedding_dim), np.float32), np.zeros(0, np.float32))
    durs = [min(infos[k].duration, max_sec) if max_sec else infos[k].duration for k in keys]
    batches = length_buckets(durs, batch_sec)
    sr = getattr(model, "sample_rate", 16000)
    dset = Utterances([(str(ds.abspath(k)), k) for k in keys], sr, max_sec)
    loader = DataLoader(dset, batch_sampler=ListSampler(batches), collate_fn=collate, num_workers=workers)
    was_training = model.training
    model.eval()
    out_keys, embs, norms = [], [], []
    for b in tqdm(loader, total=len(batches), desc=desc, disable=not progress, leave=False, unit="batch"):
        e = model(b.wav.to(device), b.lengths.to(device)).float()
        norms.append(e.norm(dim=-1).cpu())
        embs.append(F.normalize(e, dim=-1).cpu())
        out_keys += b.keys
    model.train(was_training)
    mat = torch.cat(embs).numpy()
    nrm = torch.cat(norms).numpy()
    order = np.argsort(np.asarray(out_keys))
    return Embeddings([out_keys[i] for i in order], mat[order], nrm[order])
