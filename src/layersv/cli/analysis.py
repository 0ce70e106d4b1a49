"""``layersv probe`` (per-layer EER of a frozen encoder) and ``layersv layers`` (learned layer usage)."""

from __future__ import annotations

from pathlib import Path

from ..analysis.layer_usage import layer_usage
from ..analysis.probe import probe_dataset, probe_markdown


def _int_list(s: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{flag}: expected comma-separated integers, got {s!r}") from None


def add_parsers(sub) -> None:
    p = sub.add_parser("probe", help="per-layer EER of a frozen encoder (statistics + whitening, no training)")
    p.add_argument("data", help="dataset folder (train.csv + valid/test trials)")
    p.add_argument("--backbone_cfg", required=True, help="HF hub id, local directory or tiny-<family>")
    p.add_argument("--frontend", default="auto", help="ssl | whisper | auto (whisper if the checkpoint is one)")
    p.add_argument("--layers", default="", help="comma-separated hidden-state indices (default: all)")
    p.add_argument("--out", default="", help="output folder (default <data>/probe-<backbone name>)")
    p.add_argument("--pca_dim", type=int, default=0, help="keep this many whitened directions (0 = all)")
    p.add_argument("--no-lda", action="store_true", help="PCA whitening only, even with several utts per speaker")
    p.add_argument("--batch_sec", type=float, default=60.0, help="audio seconds per encoder batch")
    p.add_argument("--max_sec", type=float, default=0.0, help="use the first seconds of each utterance (0 = all)")
    p.add_argument("--no-cache", action="store_true", help="ignore an existing `layersv cache` of this encoder")
    p.add_argument("--cache_dir", default="", help="where `layersv cache` wrote it (default <data>/.layersv_cache)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=cmd_probe)

    la = sub.add_parser("layers", help="which hidden states a trained run's backend uses")
    la.add_argument("run", help="run folder (model_best.json, config.yaml)")
    la.add_argument("--out", default="", help="output folder (default: the run folder)")
    la.add_argument("--max_utts", type=int, default=64, help="validation utterances for layer attention")
    la.add_argument("--heat_utts", type=int, default=4, help="validation utterances drawn in the layer x time "
                    "heat map (frame-level layer attention)")
    la.add_argument("--device", default="cpu")
    la.set_defaults(handler=cmd_layers)


def cmd_probe(a) -> int:
    out = a.out or str(Path(a.data) / f"probe-{Path(a.backbone_cfg.rstrip('/')).name}")
    r = probe_dataset(a.data, a.backbone_cfg, out, a.frontend, _int_list(a.layers, "--layers") or None,
                      a.pca_dim, not a.no_lda, a.batch_sec, a.max_sec, not a.no_cache, a.cache_dir, a.device,
                      not a.no_progress)
    print(probe_markdown(r))
    print(f"written: {out}/probe.json, probe.md, probe.png")
    return 0


def cmd_layers(a) -> int:
    r = layer_usage(a.run, a.out or None, a.max_utts, a.device, a.heat_utts)
    kv = "key_weights" in r  # MHFA: its key and value aggregators
    for n, i in enumerate(r["layer_ids"]):
        extra = f"   key {r['key_weights'][n]:.4f}  value {r['value_weights'][n]:.4f}" if kv else ""
        print(f"hidden state {i:3d}: {r['weights'][n]:.4f}{extra}")
    print(f"written: {a.out or a.run}/layers.json, layers.png" + (", layers_time.png" if "heat_map" in r else ""))
    return 0
