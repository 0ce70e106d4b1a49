"""``layersv cache``: precompute the hidden states of a frozen frontend for a dataset folder."""

from __future__ import annotations


def add_parsers(sub) -> None:
    c = sub.add_parser("cache", help="cache a frozen encoder's hidden states for a dataset folder")
    c.add_argument("data", help="dataset folder")
    c.add_argument("--backbone_cfg", required=True, help="HF hub id, local directory or tiny-<family>")
    c.add_argument("--frontend", default="ssl", help="frontend registry key (ssl, whisper, fbank, ...)")
    c.add_argument("--layers", default="", help="comma-separated hidden-state indices (default: all)")
    c.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    c.add_argument("--cache_dir", default="", help="default <data>/.layersv_cache")
    c.add_argument("--splits", default="train,valid", help="comma-separated: train, valid, test")
    c.add_argument("--device", default="cpu")
    c.add_argument("--no-progress", action="store_true")


def run(a) -> int | None:
    if a.command != "cache":
        return None
    from .config import FrontendConfig
    from .frontends.cache import build_dataset_cache

    try:
        layers = [int(x) for x in a.layers.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--layers: expected comma-separated integers, got {a.layers!r}") from None
    cfg = FrontendConfig(frontend=a.frontend, backbone_cfg=a.backbone_cfg, layers=layers, cache_dtype=a.dtype)
    c = build_dataset_cache(a.data, cfg, a.cache_dir, tuple(s for s in a.splits.split(",") if s),
                            a.device, not a.no_progress)
    h = c.header
    print(f"cache {c.path}: {len(c.keys)} utterances, {h['num_layers']} layers x {h['dim']} ({h['dtype']})")
    return 0
