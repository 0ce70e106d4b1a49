"""A run's evaluation embeddings: full utterances or the average of N fixed crops, cached per run.

* Full utterances: :func:`layersv.embed.batches.extract_embeddings` (length-bucketed batches).
* ``n_crops`` > 0: ECAPA-style test-time crops (Desplanques et al., "ECAPA-TDNN", Interspeech
  2020): ``n_crops`` windows of ``crop_sec`` seconds evenly spaced over the utterance (an
  utterance not longer than ``crop_sec`` is one crop: itself).  The embedding is the mean of
  the L2-normalised crop embeddings, re-normalised; its raw norm is the mean raw norm.
  All crops have the same length, so batches carry no padding.
* Cache: ``run_dir/embeddings/<set>[_crops<N>x<S>s].npz`` with a fingerprint of the best model (the sha256 of its
  weights, recorded in ``model_best.json``) and of the extraction settings; a mismatch recomputes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..checkpoint import description_fingerprint
from ..data.audio import AudioInfo, load_audio
from ..data.dataset import ListSampler, collate, length_buckets
from ..data.dataset_folder import DatasetFolder
from ..utils import atomic_write_bytes
from .batches import Embeddings, extract_embeddings


def crop_starts(duration_sec: float, n_crops: int, crop_sec: float) -> list[float]:
    """Start times (s) of ``n_crops`` evenly spaced ``crop_sec`` windows; ``[0.0]`` if the file is short."""
    if duration_sec <= crop_sec or n_crops <= 1:
        return [max(0.0, (duration_sec - crop_sec) / 2)] if n_crops == 1 and duration_sec > crop_sec else [0.0]
    return [float(x) for x in np.linspace(0.0, duration_sec - crop_sec, n_crops)]


class Crops(Dataset):
    """Items ``(wav (crop samples,), owner index, key)``: one fixed-length segment of an utterance."""

    def __init__(self, items: list[tuple[str, str, int, float, float]], sample_rate: int):
        self.items, self.sample_rate = items, sample_rate  # (path, key, owner, start_sec, dur_sec)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, key, owner, start, dur = self.items[i]
        return load_audio(path, self.sample_rate, start, dur), owner, key


@torch.no_grad()
def extract_crop_embeddings(model: torch.nn.Module, ds: DatasetFolder, keys: list[str], infos: dict[str, AudioInfo],
                            n_crops: int, crop_sec: float, batch_sec: float = 120.0, device: str = "cpu",
                            workers: int = 0, progress: bool = True, desc: str = "embed") -> Embeddings:
    """Average of ``n_crops`` crop embeddings per utterance → :class:`Embeddings` sorted by key."""
    keys = sorted(set(keys))
    items, durs = [], []
    for j, k in enumerate(keys):
        d = infos[k].duration
        for s in crop_starts(d, n_crops, crop_sec):
            items.append((str(ds.abspath(k)), k, j, s, min(crop_sec, d)))
            durs.append(min(crop_sec, d))
    batches = length_buckets(durs, batch_sec)
    loader = DataLoader(Crops(items, getattr(model, "sample_rate", 16000)), batch_sampler=ListSampler(batches),
                        collate_fn=collate, num_workers=workers)
    was_training = model.training
    model.eval()
    sums = torch.zeros(len(keys), model.embedding_dim, dtype=torch.float64)
    norms = torch.zeros(len(keys), dtype=torch.float64)
    counts = torch.zeros(len(keys), dtype=torch.float64)
    for b in tqdm(loader, total=len(batches), desc=desc, disable=not progress, leave=False, unit="batch"):
        e = model(b.wav.to(device), b.lengths.to(device)).float().cpu().double()
        owner = b.labels
        sums.index_add_(0, owner, F.normalize(e, dim=-1))
        norms.index_add_(0, owner, e.norm(dim=-1))
        counts.index_add_(0, owner, torch.ones(len(owner), dtype=torch.float64))
    model.train(was_training)
    mat = F.normalize(sums, dim=-1).float().numpy()
    return Embeddings(keys, mat, (norms / counts).numpy())


def extract_any(model: torch.nn.Module, ds: DatasetFolder, keys: list[str], infos: dict[str, AudioInfo],
                n_crops: int = 0, crop_sec: float = 3.0, batch_sec: float = 120.0, max_sec: float = 0.0,
                device: str = "cpu", workers: int = 0, progress: bool = True, desc: str = "embed") -> Embeddings:
    """Full-utterance (``n_crops`` 0) or ``n_crops``-crop embeddings of ``keys`` → ``(N, E)``, sorted by key."""
    if n_crops:
        return extract_crop_embeddings(model, ds, keys, infos, n_crops, crop_sec, batch_sec, device, workers,
                                       progress, desc=desc)
    return extract_embeddings(model, ds, keys, infos, batch_sec, max_sec, device, workers, progress, desc=desc)


def model_fingerprint(run_dir: str | Path) -> str:
    """Changes whenever the run's best model is rewritten (sha256 of its weights, from its JSON)."""
    return description_fingerprint(run_dir)


def run_embeddings(run_dir: str | Path, set_name: str, model_fn, ds: DatasetFolder, keys: list[str],
                      infos: dict[str, AudioInfo], n_crops: int = 0, crop_sec: float = 3.0, batch_sec: float = 120.0,
                      max_sec: float = 0.0, device: str = "cpu", workers: int = 0, progress: bool = True,
                      use_cache: bool = True, extract=None) -> Embeddings:
    """Embeddings of ``keys`` from ``run_dir/embeddings/<set_name>.npz``, or extracted and stored.

    ``model_fn()`` returns the model (called only on a cache miss).  ``extract(keys) -> Embeddings``, when
    given, computes a miss instead (``layersv eval`` under torchrun: shared by the ranks).
    """
    run_dir = Path(run_dir)
    keys = sorted(set(keys))
    fp = json.dumps({"model": model_fingerprint(run_dir), "n_crops": n_crops,
                     "crop_sec": crop_sec if n_crops else 0.0, "max_sec": 0.0 if n_crops else max_sec,
                     "data": str(ds.audio_root)}, sort_keys=True)
    suffix = f"_crops{n_crops}x{crop_sec:g}s" if n_crops else ""
    path = run_dir / "embeddings" / f"{set_name}{suffix}.npz"
    if use_cache and path.is_file():
        try:
            z = np.load(path, allow_pickle=False)
            if str(z["fingerprint"]) == fp and [str(k) for k in z["keys"]] == keys:
                return Embeddings(keys, z["matrix"], z["raw_norms"])
        except (OSError, KeyError, ValueError):
            pass  # unreadable or old cache: recompute
    if extract is not None:
        emb = extract(keys)
    else:
        emb = extract_any(model_fn(), ds, keys, infos, n_crops, crop_sec, batch_sec, max_sec, device, workers,
                          progress, desc=f"{set_name} embed")
    if use_cache:
        buf = io.BytesIO()
        np.savez(buf, keys=np.asarray(emb.keys), matrix=emb.matrix, raw_norms=emb.raw_norms,
                 fingerprint=np.asarray(fp))
        atomic_write_bytes(path, buf.getvalue())
    return emb
