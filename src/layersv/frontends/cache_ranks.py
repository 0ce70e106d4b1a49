"""The feature cache built by every rank of a ``torchrun`` job (``layersv cache`` under torchrun).

Rank 0 alone plans (checks the existing shards, deletes stale files, writes the manifest of the valid
ones: :meth:`FeatureCache._plan`) and broadcasts the plan ``{shard id: keys}``, a deterministic split
of the sorted missing utterances into shards of ``shard_utts``, the same as one process makes.  The
build runs in rounds: in round ``j`` rank ``r`` encodes shard ``j·W + r`` (W ranks) and writes its own
file atomically (temporary file + rename, sha256 computed while writing); the manifest entries
``{keys, frames, bytes, sha256, audio}`` are gathered and rank 0 rewrites the manifest after every
round.  A shard's utterances and batches do not depend on W, so the cached features are those of a
one-process build, and a killed job loses at most the W shards of the round in progress.

All ranks must see the same folder (one machine, or a shared file system) and hold the same encoder:
the cache folder (a hash of the encoder's weights and settings) is compared across ranks first.
An error on any rank is raised on every rank (no rank waits forever in a collective).
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm.auto import tqdm

from .. import distributed as dist
from ..utils import atomic_write_text


def _agree(value, what: str):
    """Every rank's ``value`` must be equal; returns it."""
    seen = dist.gather_objects(value)
    if any(v != seen[0] for v in seen):
        raise ValueError(f"ranks disagree on the {what}: {seen} (all ranks must hold the same encoder, "
                         "settings and files)")
    return value


def build_on_ranks(cls, frontend, ds, keys: list[str], path: Path, header: dict, shard_utts: int, batch_sec: float,
                   device: str, progress: bool, log, augment, verify: bool):
    """:meth:`FeatureCache.open_or_build` on W > 1 ranks → the complete ``FeatureCache`` on every rank."""
    _agree(str(path), "feature cache folder")
    main = dist.is_main()
    planned = dist.all_or_raise(lambda: cls._plan(path, header, ds, keys, shard_utts, verify, log) if main else None)
    manifest, plan = planned[0]
    items, w, r = list(plan.items()), dist.world_size(), dist.rank()
    rounds = range(0, len(items), w)

    def encode(j: int):  # this rank's shard of round j → (shard id, manifest entry), or None
        if j + r >= len(items):
            return None
        sid, part = items[j + r]
        return sid, cls._build_shard(frontend, ds, part, path, sid, header, batch_sec, device, augment)

    for j in tqdm(rounds, desc=f"cache build ({w} ranks)", disable=not (progress and main), unit="round"):
        entries = dist.all_or_raise(lambda: encode(j))
        for e in entries:
            if e:
                manifest["shards"][e[0]] = e[1]
        manifest["complete"] = j + w >= len(items)
        # rank 0 writes; the others wait for it (and for its error, if any), so the manifest is on disk
        dist.all_or_raise(lambda: main and atomic_write_text(path / "manifest.json", json.dumps(manifest)))
    return cls(path, manifest)
