"""Frozen-feature cache: the hidden states ``(L, T, D)`` of every utterance, computed once, memory-mapped.

Training a backend on a *frozen* encoder recomputes the same encoder forward pass every epoch; the
cache computes it once per utterance (full utterance, fp16 by default, optional layer subset) and
trains from random crops in the frame domain (:class:`CachedCrops`, the same deterministic stream as
``data.dataset.TrainCrops``).  :class:`CachedFrontend` passes cached hidden states through and runs
the real frontend on waveforms, so the training loop and the saved checkpoints are unchanged.

Layout: ``<root>/<frontend>-<key16>/manifest.json`` + ``shard_00000.npy`` ... , each shard
``(L, sum of its utterances' frames, D)``.  The directory key hashes the frontend description (which
includes the layer selection), a hash of its weights, dtype, sample rate and the dataset folder, so
another encoder / layer subset / dtype gets another cache.  The manifest records each shard's
utterances with their frame counts and the audio file's size and mtime; a shard whose files changed,
whose file is missing or has the wrong shape, or whose utterance list differs is rebuilt, never used.
Shards are written to a temporary file and renamed, then the manifest is rewritten atomically: a
killed build loses at most the shard in progress, and the next call resumes.
Augmented copies of the training utterances (``augment``, :mod:`layersv.frontends.cache_augment`)
are caches of their own, keyed by the clean key plus the copy's augmentation settings.
The manifest stores each shard's size and sha256: a truncated shard is always detected (size), and
``verify=True`` (``layersv cache``) re-hashes every shard, so a resumed build equals an uninterrupted one.
Under ``torchrun`` the ranks encode the planned shards in turn and rank 0 keeps the manifest
(:mod:`layersv.frontends.cache_ranks`): the same files as one process writes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data.audio import audio_info
from ..data.dataset import Batch, ListSampler, Utterances, collate, length_buckets
from ..distributed import world_size
from ..utils import atomic_write_text, file_sha256
from .cache_ranks import build_on_ranks
from .wrapper import FrontendWrapper

FORMAT = "layersv-cache-1"
DTYPES = {"float16": np.float16, "float32": np.float32}


def weights_hash(module: nn.Module) -> str:
    """sha256 over the state dict (names, shapes, dtypes, bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class _HashingWriter:
    """A write-only file wrapper that hashes what passes through (``np.save`` calls ``write``)."""

    def __init__(self, f, h):
        self.f, self.h = f, h

    def write(self, b) -> int:
        self.h.update(b)
        return self.f.write(b)


def is_frozen(frontend: nn.Module) -> bool:
    return not any(p.requires_grad for p in frontend.parameters())


def audio_stamp(path: Path) -> list[int]:
    st = os.stat(path)
    return [int(st.st_size), int(st.st_mtime_ns)]


def cache_location(frontend: nn.Module, frontend_name: str, ds, root: str | Path, dtype: str,
                   augment=None) -> tuple[Path, dict]:
    """The cache folder and its key (``header``): encoder, weights hash, layers, dtype, rate, dataset
    (and, for an augmented copy, ``augment.header``: copy index, seed, augmentation settings)."""
    header = {"format": FORMAT, "frontend": frontend_name, "description": frontend.describe(),
              "weights": weights_hash(frontend), "layer_ids": list(getattr(frontend, "layer_ids", [0])),
              "dtype": dtype, "sample_rate": int(frontend.sample_rate), "data": str(Path(ds.root).resolve()),
              "num_layers": int(frontend.num_layers), "dim": int(frontend.dim)}
    if augment is not None:
        header["augment"] = augment.header
    digest = hashlib.sha256(json.dumps(header, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(root) / f"{frontend_name}-{digest}", header


class FeatureCache:
    """Read access to a complete cache: ``get(key, start, stop) -> (L, stop - start, D)`` float32 array."""

    def __init__(self, path: Path, manifest: dict):
        self.path, self.manifest = Path(path), manifest
        self.header = manifest["header"]
        self.index: dict[str, tuple[str, int, int]] = {}
        for sid, sh in manifest["shards"].items():
            off = 0
            for k, n in zip(sh["keys"], sh["frames"]):
                self.index[k] = (sid, off, n)
                off += n
        self._maps: dict[str, np.ndarray] = {}
        self._layer_pos: list[int] | None = None  # a view on some of the cached layers

    def select_layers(self, layer_ids: list[int]) -> "FeatureCache":
        """A view of this cache that returns only the hidden states ``layer_ids`` (of ``header['layer_ids']``)."""
        have = list(self.header["layer_ids"])
        if any(i not in have for i in layer_ids):
            raise KeyError(f"layers {layer_ids} not all cached (cached: {have})")
        view = FeatureCache(self.path, self.manifest)
        view._maps, view._layer_pos = self._maps, [have.index(i) for i in layer_ids]
        return view

    @property
    def keys(self) -> list[str]:
        return sorted(self.index)

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def fresh(self, keys: list[str], ds) -> bool:
        """True when every key is cached and its audio file is unchanged since (size and mtime)."""
        if not hasattr(self, "_stamps"):
            self._stamps = {k: a for sh in self.manifest["shards"].values() for k, a in zip(sh["keys"], sh["audio"])}
        try:
            return all(self._stamps.get(k) == audio_stamp(ds.abspath(k)) for k in keys)
        except OSError:
            return False

    def frames(self, key: str) -> int:
        return self.index[key][2]

    def get(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        sid, off, n = self.index[key]
        if sid not in self._maps:
            self._maps[sid] = np.load(self.path / f"shard_{sid}.npy", mmap_mode="r", allow_pickle=False)
        stop = n if stop is None else min(stop, n)
        arr = self._maps[sid]
        if self._layer_pos is not None:
            return np.array(arr[self._layer_pos, off + start : off + stop], dtype=np.float32)
        return np.array(arr[:, off + start : off + stop], dtype=np.float32)

    @classmethod
    def open_or_build(cls, frontend: nn.Module, frontend_name: str, ds, keys: list[str], root: str | Path,
                      dtype: str = "float16", shard_utts: int = 64, batch_sec: float = 60.0, device: str = "cpu",
                      progress: bool = True, log=None, augment=None, verify: bool = False) -> "FeatureCache":
        """Open the cache of ``keys`` for this frozen frontend, building (or finishing) it first when needed.

        Shards are reused by utterance, whatever request built them: a cache of train + valid + test
        serves a later request for train + valid as it is, and a larger request only encodes the
        utterances that no valid shard holds (in new shards). A shard is dropped (and its file
        deleted) only when one of its audio files changed or vanished, or its file is damaged.
        ``augment`` (a ``cache_augment.CopyAugment``) makes it an augmented copy: waveforms are augmented
        before the encoder, and its settings join the key. ``verify``: re-hash every shard against the
        manifest's sha256 (else only sizes and shapes are checked).
        """
        if dtype not in DTYPES:
            raise ValueError(f"cache dtype {dtype!r}; valid: {', '.join(DTYPES)}")
        if not is_frozen(frontend):
            raise ValueError("the feature cache needs a frozen frontend (set frz_pretrain: true)")
        path, header = cache_location(frontend, frontend_name, ds, root, dtype, augment)
        if world_size() > 1:  # under torchrun: the ranks encode the planned shards in turn (cache_ranks.py)
            return build_on_ranks(cls, frontend, ds, keys, path, header, shard_utts, batch_sec, device, progress,
                                  log, augment, verify)
        manifest, plan = cls._plan(path, header, ds, keys, shard_utts, verify, log)
        for n, (sid, part) in enumerate(tqdm(list(plan.items()), desc="cache build", disable=not progress,
                                             unit="shard")):
            manifest["shards"][sid] = cls._build_shard(frontend, ds, part, path, sid, header, batch_sec, device,
                                                       augment)
            manifest["complete"] = n + 1 == len(plan)
            atomic_write_text(path / "manifest.json", json.dumps(manifest))
        return cls(path, manifest)

    @classmethod
    def _plan(cls, path: Path, header: dict, ds, keys: list[str], shard_utts: int, verify: bool,
              log=None) -> tuple[dict, dict[str, list[str]]]:
        """Check the existing shards, delete stale files, write the manifest of the valid ones
        → (manifest, plan ``{shard id: its utterance keys}`` of the shards still to encode)."""
        path.mkdir(parents=True, exist_ok=True)
        for tmp in path.glob("shard_*.npy.tmp"):  # left by a killed build
            tmp.unlink()
        keys = sorted(set(keys))
        manifest = cls._read_manifest(path, header)
        kept = {sid: sh for sid, sh in manifest["shards"].items() if cls._shard_valid(path, sid, sh, ds, header, verify)}
        stale = len(manifest["shards"]) - len(kept)
        have = {k for sh in kept.values() for k in sh["keys"]}
        missing = [k for k in keys if k not in have]
        first = max((int(sid) for sid in kept), default=-1) + 1
        plan = {f"{first + i:05d}": missing[j : j + shard_utts]
                for i, j in enumerate(range(0, len(missing), shard_utts))}
        manifest = {"header": header, "shards": kept, "complete": not plan}
        if log and (plan or stale):
            log.info(f"feature cache {path}: {len(kept)} shards valid, {stale} stale, building {len(plan)} "
                     f"for {len(missing)} of {len(keys)} utterances")
        for stray in path.glob("shard_*.npy"):  # stale shards, and files of a killed build
            if stray.stem[6:] not in kept:
                stray.unlink()
        atomic_write_text(path / "manifest.json", json.dumps(manifest))
        return manifest, plan

    @classmethod
    def _build_shard(cls, frontend: nn.Module, ds, part: list[str], path: Path, sid: str, header: dict,
                     batch_sec: float, device: str, augment=None) -> dict:
        """Encode and write shard ``sid`` (atomic) → its manifest entry (keys, frames, bytes, sha256, audio)."""
        frames, size, sha = cls._write_shard(frontend, ds, part, path / f"shard_{sid}.npy", DTYPES[header["dtype"]],
                                             batch_sec, device, augment=augment)
        return {"keys": part, "frames": frames, "bytes": size, "sha256": sha,
                "audio": [audio_stamp(ds.abspath(k)) for k in part]}

    @staticmethod
    def _read_manifest(path: Path, header: dict) -> dict:
        try:
            m = json.loads((path / "manifest.json").read_text())
        except (OSError, ValueError):
            return {"header": header, "shards": {}}
        same = json.dumps(m.get("header"), sort_keys=True, default=str) == json.dumps(header, sort_keys=True,
                                                                                       default=str)
        return m if same else {"header": header, "shards": {}}

    @staticmethod
    def _shard_valid(path: Path, sid: str, sh: dict, ds, header: dict, verify: bool = False) -> bool:
        """The shard's audio files are unchanged, its file has the recorded size (and sha256 when
        ``verify``), and its array the recorded shape and dtype. A manifest entry of an older version
        without size and hash gets them here (once)."""
        try:
            if sh.get("audio") != [audio_stamp(ds.abspath(k)) for k in sh.get("keys", [])]:
                return False
            f = path / f"shard_{sid}.npy"
            if "bytes" not in sh:
                sh["bytes"], sh["sha256"] = f.stat().st_size, file_sha256(f)
            if f.stat().st_size != sh["bytes"] or (verify and file_sha256(f) != sh.get("sha256")):
                return False
            arr = np.load(f, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return False
        return arr.shape == (header["num_layers"], sum(sh["frames"]), header["dim"]) and \
            arr.dtype == DTYPES[header["dtype"]]

    @staticmethod
    @torch.no_grad()
    def _write_shard(frontend: nn.Module, ds, keys: list[str], out: Path, dtype, batch_sec: float,
                     device: str, augment=None) -> tuple[list[int], int, str]:
        """Compute and write one shard atomically → (frames per utterance, file size, sha256)."""
        sr = int(frontend.sample_rate)
        dset = Utterances([(str(ds.abspath(k)), k) for k in keys], sr)
        if augment is not None:
            dset = augment.wrap(dset)
        durs = [audio_info(ds.abspath(k)).duration for k in keys]
        loader = DataLoader(dset, batch_sampler=ListSampler(length_buckets(durs, batch_sec)), collate_fn=collate)
        frontend.eval()
        states: dict[str, np.ndarray] = {}
        for b in loader:
            hidden, lengths = frontend(b.wav.to(device), b.lengths.to(device))
            for i, k in enumerate(b.keys):
                states[k] = hidden[i, :, : int(lengths[i])].cpu().numpy().astype(dtype)
        arr = np.concatenate([states[k] for k in keys], axis=1)
        tmp = out.with_name(out.name + ".tmp")
        h = hashlib.sha256()
        try:
            with open(tmp, "wb") as f:
                np.save(_HashingWriter(f, h), arr)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return [int(states[k].shape[1]) for k in keys], out.stat().st_size, h.hexdigest()


class CachedCrops(Dataset):
    """Random ``crop`` -frame crops of cached states, the stream of ``TrainCrops`` (same permutations,
    same per-item seeds); shorter utterances are wrap-padded.  Item: ``(hidden (L, crop, D), label, key)``."""

    def __init__(self, cache: FeatureCache, keys: list[str], labels: list[int], crop: int, seed: int,
                 fix_to_maxlen: bool = True):
        self.cache, self.keys, self.labels = cache, keys, labels
        self.crop, self.seed, self.fix_to_maxlen = crop, seed, fix_to_maxlen
        self._perm: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def utterance_of(self, k: int) -> int:
        epoch, pos = divmod(k, len(self.keys))
        if epoch not in self._perm:
            self._perm = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.keys))}
        return int(self._perm[epoch][pos])

    def crop_start(self, k: int) -> int:
        """First frame of item ``k``'s crop (drawn as ``TrainCrops`` draws its first sample)."""
        n = self.cache.frames(self.keys[self.utterance_of(k)])
        rng = np.random.default_rng([self.seed, 1_000_003, k])
        return int(rng.integers(0, n - self.crop + 1)) if n > self.crop else 0

    def source(self, k: int) -> "FeatureCache":
        """The cache item ``k`` is read from (augmented subclasses pick a copy)."""
        return self.cache

    def __getitem__(self, k: int) -> tuple[np.ndarray, int, str]:
        u = self.utterance_of(k)
        key = self.keys[u]
        start = self.crop_start(k)
        h = self.source(k).get(key, start, start + self.crop)
        if h.shape[1] < self.crop and self.fix_to_maxlen and h.shape[1] > 0:
            h = np.pad(h, ((0, 0), (0, self.crop - h.shape[1]), (0, 0)), mode="wrap")
        return h, self.labels[u], key

    @staticmethod
    def collate(items: list[tuple[np.ndarray, int, str]]) -> Batch:
        """The batches of this dataset: :func:`collate_hidden` (hidden states, not waveforms)."""
        return collate_hidden(items)


def collate_hidden(items: list[tuple[np.ndarray, int, str]]) -> Batch:
    """Pad cached states to ``Batch(wav=hidden (B, L, T, D), lengths=frames (B,), labels, keys)``."""
    L, _, D = items[0][0].shape
    T = max(h.shape[1] for h, _, _ in items)
    out = torch.zeros(len(items), L, T, D)
    for i, (h, _, _) in enumerate(items):
        out[i, :, : h.shape[1]] = torch.from_numpy(h)
    return Batch(out, torch.tensor([h.shape[1] for h, _, _ in items]), torch.tensor([lab for _, lab, _ in items]),
                 [k for _, _, k in items])


class CachedFrontend(FrontendWrapper):
    """The real (frozen) frontend, bypassed for inputs that already are hidden states ``(B, L, T, D)``."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x, lengths) if x.dim() == 4 else self.inner(x, lengths)


def open_existing(frontend: nn.Module, frontend_name: str, ds, root: str | Path, dtype: str,
                  augment=None) -> "FeatureCache | None":
    """The cache built for exactly this frontend and dataset (and augmented copy), opened read-only, or
    None (never builds)."""
    path, header = cache_location(frontend, frontend_name, ds, root, dtype, augment)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    same = json.dumps(manifest.get("header"), sort_keys=True, default=str) == json.dumps(header, sort_keys=True,
                                                                                          default=str)
    return FeatureCache(path, manifest) if same else None


def all_layers_view(frontend: nn.Module, frontend_name: str, ds, root: str | Path, dtype: str,
                    keys: list[str] | None = None, augment=None) -> "FeatureCache | None":
    """For a frontend that keeps a subset of an encoder's hidden states (``frontend.layers``): a view on
    those states of the all-layers cache of the same encoder (what ``layersv cache`` writes; with
    ``augment``, that augmented copy), when it exists and holds ``keys`` with their audio unchanged (size,
    mtime); else None.  Saves encoding the corpus again for every layer subset."""
    ids = list(getattr(frontend, "layer_ids", []))
    hf = getattr(getattr(frontend, "encoder", None), "config", None)
    n = getattr(hf, "encoder_layers", None) or getattr(hf, "num_hidden_layers", 0)
    if not ids or not n or ids == list(range(n + 1)):
        return None
    try:  # the same encoder with every hidden state: the key `layersv cache` (no --layers) wrote
        frontend.layer_ids = list(range(n + 1))
        full = open_existing(frontend, frontend_name, ds, root, dtype, augment)
    finally:
        frontend.layer_ids = ids
    if full is None or (keys is not None and not full.fresh(keys, ds)):  # every key cached, its audio unchanged
        return None
    return full.select_layers(ids)
