"""``layersv cache``: precompute the hidden states of a frozen frontend for a dataset folder.

``--augment_copies K`` adds K augmented copies of every training utterance (issue 11 §3); the
augmentation keys (``--aug_kinds``, ``--noise_snr`` …) are those of ``DataConfig`` and must match the
training run's for it to find them (``train --cache true --aug_prob 0.6 --augment_copies K ...``)."""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError, DataConfig, FrontendConfig, coerce
from ..distributed import on_ranks
from ..frontends import guess_frontend
from ..frontends.cache_build import build_dataset_cache


def add_parsers(sub) -> None:
    c = sub.add_parser("cache", help="cache a frozen encoder's hidden states for a dataset folder")
    c.add_argument("data", help="dataset folder")
    c.add_argument("--backbone_cfg", required=True, help="HF hub id, local directory or tiny-<family>")
    c.add_argument("--frontend", default="auto", help="frontend registry key (ssl, whisper, fbank, ...) or auto "
                   "(whisper if the checkpoint is one, else ssl; as `layersv probe`)")
    c.add_argument("--layers", default="", help="comma-separated hidden-state indices (default: all)")
    c.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    c.add_argument("--cache_dir", default="", help="default <data>/.layersv_cache")
    c.add_argument("--splits", default="train,valid",
                   help="comma-separated: train, valid, test, any trial list NAME (NAME_trials.csv: vox1_e, ...), "
                        "or all (train and every trial list)")
    c.add_argument("--shard_utts", type=int, default=64, help="utterances per shard file (the unit of work "
                   "of a rank under torchrun)")
    c.add_argument("--device", default="cpu")
    c.add_argument("--no-progress", action="store_true")
    c.add_argument("--augment_copies", type=int, default=0, help="K augmented copies of each training utterance")
    c.add_argument("--augment_seed", type=int, default=0, help="seed of the augmented copies")
    c.add_argument("--aug", action="append", default=[], metavar="KEY=VALUE",
                   help="augmentation setting of the copies, a DataConfig key (repeatable), e.g. "
                        "--aug aug_kinds=sim_reverb,colored_noise,speaker_babble,telephone --aug noise_snr=[0,15]")
    c.set_defaults(handler=cmd_cache)


def cmd_cache(a) -> int:
    try:
        layers = [int(x) for x in a.layers.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--layers: expected comma-separated integers, got {a.layers!r}") from None
    frontend = guess_frontend(a.backbone_cfg) if a.frontend == "auto" else a.frontend
    cfg = FrontendConfig(frontend=frontend, backbone_cfg=a.backbone_cfg, layers=layers, cache_dtype=a.dtype,
                         augment_copies=a.augment_copies, augment_seed=a.augment_seed)
    with on_ranks(a.device) as (device, main):  # torchrun: every rank encodes its share, rank 0 writes the index
        c = build_dataset_cache(a.data, cfg, a.cache_dir, tuple(s for s in a.splits.split(",") if s),
                                device, not a.no_progress and main, data_cfg=aug_data_config(a.data, a.aug),
                                shard_utts=a.shard_utts)
    if not main:
        return 0
    h = c.header
    print(f"cache {c.path}: {len(c.keys)} utterances, {h['num_layers']} layers x {h['dim']} ({h['dtype']})")
    for cp in c.copies:
        ah = cp.header["augment"]
        print(f"augmented copy {ah['copy']} {cp.path}: {len(cp.keys)} utterances ({', '.join(ah['kinds'])})")
    return 0


def aug_data_config(data_dir: str, settings: list[str]):
    """A ``DataConfig`` for the augmented copies: ``KEY=VALUE`` settings, type-checked like ``--key value``."""
    cfg = DataConfig(data_dir=str(Path(data_dir).resolve()))
    for kv in settings:
        key, sep, value = kv.partition("=")
        if not sep or not hasattr(cfg, key) or key == "data_dir":
            valid = [k for k in vars(cfg) if k.startswith(("aug_", "noise", "music", "babble", "rir", "telephone"))]
            raise ConfigError(f"--aug {kv!r}: expected KEY=VALUE with KEY one of {', '.join(valid)}")
        setattr(cfg, key, coerce(value, getattr(cfg, key), key))
    return cfg
