"""Augmented copies in the frozen-feature cache (issue 11 §3): fast *and* augmented frozen-encoder training.

``layersv cache DATA --augment_copies K`` stores, besides the clean hidden states, ``K`` augmented
versions of every training utterance.  Copy ``c`` (1 … K) of utterance ``key`` is the encoder's
output on the *full* waveform augmented with one of the enabled kinds (:mod:`layersv.data.augment`):
the kinds rotate over the copies from an offset drawn per utterance, so the K copies of an utterance
use K different kinds (when K ≤ the number of kinds) and every kind is used equally often; all draws
are seeded by ``(augment_seed, c, sha256(key))`` — a copy depends neither on the shard plan, nor on K,
nor on the training seed.  Augmentation keeps the length,
so a copy has the clean utterance's frame count and the same crops apply.

Each copy is a :class:`~layersv.frontends.cache.FeatureCache` of its own (the same fp16 memmap shards,
resumable build) whose key adds ``{"copy": c, "seed", "kinds", "settings_sha256"}`` (the settings of
every enabled kind: SNR ranges, colours, talker list, RIR-bank checksum, telephone band …) to the
clean cache's key: another setting gives other copies, a larger K reuses copies ``1 … K_old``.

Training (:class:`AugmentedCachedCrops`) follows the stream of ``TrainCrops``: item ``k`` reads the same
utterance and crop position, and the first draw of ``augment_rng(seed, k)`` decides whether it is
augmented (``< aug_prob``), exactly as the on-the-fly augmenter decides; the next draw picks the copy.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
from torch.utils.data import Dataset

from ..data.augment import build_augmenter
from ..data.dataset import augment_rng
from .cache import CachedCrops, FeatureCache, all_layers_view


def key_seed(key: str) -> int:
    """A stable 63-bit integer of an utterance key (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") >> 1


class CopyAugment:
    """Augments waveforms of cached copy ``copy``: ``(samples,)`` float32 at the frontend rate → same shape."""

    def __init__(self, augmenter, copy: int, seed: int, speaker_of: dict[str, str]):
        if copy < 1:
            raise ValueError(f"augmented copies are numbered from 1, got {copy}")
        self.augmenter, self.copy, self.seed, self.speaker_of = augmenter, copy, seed, speaker_of
        settings = json.dumps(augmenter.describe(), sort_keys=True, default=str)
        self.header = {"copy": copy, "seed": seed, "kinds": list(augmenter.kinds),
                       "sample_rate": augmenter.sample_rate,
                       "settings_sha256": hashlib.sha256(settings.encode()).hexdigest()}

    def kind_and_rng(self, key: str) -> tuple[str, np.random.Generator]:
        """Copy ``c`` of ``key`` uses kind ``(o + c − 1) mod n`` with ``o`` drawn per utterance: the first
        ``n`` copies of an utterance cover ``n`` different kinds; the generator of the kind's own draws
        (SNR, colour, room, talkers) is seeded by ``(seed, c, key)``."""
        kinds, h = self.augmenter.kinds, key_seed(key)
        offset = int(np.random.default_rng([self.seed, 0, h]).integers(len(kinds)))
        return kinds[(offset + self.copy - 1) % len(kinds)], np.random.default_rng([self.seed, self.copy, h])

    def __call__(self, wav: np.ndarray, key: str) -> np.ndarray:
        kind, rng = self.kind_and_rng(key)
        return self.augmenter.apply(wav, kind, rng, self.speaker_of.get(key))

    def wrap(self, dset: Dataset) -> Dataset:
        return AugmentedUtterances(dset, self)


class AugmentedUtterances(Dataset):
    """``Utterances`` items ``(wav, label, key)`` with ``wav`` augmented by a :class:`CopyAugment`."""

    def __init__(self, inner: Dataset, augment: CopyAugment):
        self.inner, self.augment = inner, augment

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        wav, label, key = self.inner[i]
        return self.augment(wav, key), label, key


def open_augmented_copies(frontend, frontend_name: str, ds, rows: list[tuple[str, str]], root, dtype: str,
                          data_cfg, copies: int, seed: int, device: str = "cpu", progress: bool = True,
                          log=None) -> list[FeatureCache]:
    """Open (building what is missing) copies ``1 … copies`` of the training ``rows`` ``(path, speaker)``.

    ``data_cfg`` (a ``DataConfig``) gives the kinds and their settings; ``aug_prob`` is ignored (every
    copy is augmented).  The talkers of ``speaker_babble`` are ``rows``.
    """
    if copies < 1:
        raise ValueError(f"augment_copies must be >= 1, got {copies}")
    sr = int(frontend.sample_rate)
    augmenter = build_augmenter(data_cfg, sr, [(str(ds.abspath(p)), s) for p, s in rows], prob=1.0,
                                progress=progress, log=log)
    speaker_of = {p: s for p, s in rows}
    keys = sorted(speaker_of)
    out = []
    for c in range(1, copies + 1):
        aug = CopyAugment(augmenter, c, seed, speaker_of)
        view = all_layers_view(frontend, frontend_name, ds, root, dtype, keys, augment=aug)  # `layersv cache`'s copy
        if view is None:
            view = FeatureCache.open_or_build(frontend, frontend_name, ds, keys, root, dtype, device=device,
                                              progress=progress, log=log, augment=aug)
        elif log is not None:
            log.info(f"augmented copy {c}: reading hidden states {frontend.layer_ids} of {view.path}")
        out.append(view)
    return out


class AugmentedCachedCrops(CachedCrops):
    """:class:`CachedCrops` that reads item ``k`` from one of the augmented ``copies`` with probability
    ``aug_prob`` (decided by ``augment_rng(seed, k)``, as ``TrainCrops`` decides), else from the clean cache."""

    def __init__(self, cache: FeatureCache, copies: list[FeatureCache], keys: list[str], labels: list[int],
                 crop: int, seed: int, aug_prob: float, fix_to_maxlen: bool = True):
        super().__init__(cache, keys, labels, crop, seed, fix_to_maxlen)
        if not copies:
            raise ValueError("AugmentedCachedCrops needs at least one augmented copy")
        missing = [k for k in keys if any(k not in c for c in copies)]
        if missing:
            raise ValueError(f"{len(missing)} training utterances have no augmented copy (e.g. {missing[0]})")
        self.copies, self.aug_prob = copies, aug_prob

    def copy_of(self, k: int) -> int:
        """0 = clean, ``c`` ≥ 1 = augmented copy ``c`` for stream item ``k``."""
        rng = augment_rng(self.seed, k)
        if self.aug_prob <= 0 or rng.random() >= self.aug_prob:
            return 0
        return 1 + int(rng.integers(len(self.copies)))

    def source(self, k: int) -> FeatureCache:
        c = self.copy_of(k)
        return self.cache if c == 0 else self.copies[c - 1]


def augmented_training_crops(cfg, frontend, ds, train_rows, labels: list[int], cache: FeatureCache, crop: int,
                             root, progress: bool = True, log=None) -> AugmentedCachedCrops:
    """For ``fit`` with ``cache: true`` and ``aug_prob > 0``: the crops dataset over clean + K copies."""
    copies = open_augmented_copies(frontend, cfg.frontend.frontend, ds, train_rows, root, cfg.frontend.cache_dtype,
                                   cfg.data, cfg.frontend.augment_copies, cfg.frontend.augment_seed,
                                   device=cfg.device, progress=progress, log=log)
    if log is not None:
        log.info(f"training from the cache: {cfg.data.aug_prob:.0%} of crops from one of "
                 f"{len(copies)} augmented copies ({', '.join(copies[0].header['augment']['kinds'])})")
    return AugmentedCachedCrops(cache, copies, [p for p, _ in train_rows], labels, crop, cfg.seed,
                                cfg.data.aug_prob, cfg.data.fix_to_maxlen)
