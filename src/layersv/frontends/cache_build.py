"""``layersv cache``: build the feature cache of a dataset folder's splits with a frozen frontend
(:class:`~layersv.frontends.cache.FeatureCache`), plus augmented copies of the training utterances
(:mod:`layersv.frontends.cache_augment`)."""

from __future__ import annotations

from pathlib import Path

from ..data.dataset_folder import open_dataset
from . import build_frontend
from .cache import FeatureCache
from .cache_augment import open_augmented_copies
from .cache_splits import split_keys


def build_dataset_cache(data_dir: str, frontend_cfg, cache_dir: str = "", splits: tuple[str, ...] = ("train", "valid"),
                        device: str = "cpu", progress: bool = True, data_cfg=None,
                        shard_utts: int = 64) -> FeatureCache:
    """``layersv cache``: cache a dataset folder's ``splits`` (train rows and/or trial utterances; ``all``:
    train and every trial list, :mod:`layersv.frontends.cache_splits`).  Under torchrun the ranks share
    the encoding (:mod:`layersv.frontends.cache_ranks`).

    With ``frontend_cfg.augment_copies`` K > 0 (and ``data_cfg``: the augmentation kinds and settings),
    also K augmented copies of every training utterance (``FeatureCache.copies`` lists them)."""
    frontend_cfg.frz_pretrain = True
    fr = build_frontend(frontend_cfg).to(device)
    if hasattr(fr, "freeze"):
        fr.freeze()
    for p in fr.parameters():
        p.requires_grad_(False)
    ds = open_dataset(data_dir, need_train="train" in splits or ("all" in splits and
                                                                 (Path(data_dir) / "train.csv").is_file()))
    keys, with_train = split_keys(ds, splits)
    root = cache_dir or Path(ds.root) / ".layersv_cache"
    cache = FeatureCache.open_or_build(fr, frontend_cfg.frontend, ds, keys, root, frontend_cfg.cache_dtype,
                                       shard_utts=shard_utts, device=device, progress=progress, verify=True)
    cache.copies = []
    if frontend_cfg.augment_copies > 0:
        if not with_train:
            raise ValueError("--augment_copies augments training utterances: include train in --splits")
        cache.copies = open_augmented_copies(fr, frontend_cfg.frontend, ds, ds.train, root, frontend_cfg.cache_dtype,
                                             data_cfg, frontend_cfg.augment_copies, frontend_cfg.augment_seed,
                                             device=device, progress=progress)
    return cache
