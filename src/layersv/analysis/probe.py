"""Layer probing: how much speaker information each hidden state of a frozen encoder carries.

For every hidden state ``l`` of the encoder: utterance statistics (masked mean ‖ std over
frames, :func:`layersv.backends.stats.utterance_stats`), a whitening transform (PCA whitening,
plus LDA when the training speakers have >= 2 utterances; :mod:`layersv.whitening`) fitted on the
dataset's **training** utterances only, cosine scoring of the validation and test trials →
EER (%) and minDCF per layer (:mod:`layersv.metrics`).  The best layer is chosen on the
**validation** trials.  Raw cosine of the un-whitened statistics is reported beside it.

The encoder runs once per utterance for all layers at once, in length-bucketed batches; only the
``(layers, 2 · dim)`` statistics of each utterance are kept (never frame-level features).
When a feature cache of this frontend (``layersv cache``) exists, the statistics of the
utterances it holds are computed from it instead of running the encoder again.
Outputs ``probe.json``, ``probe.md`` and ``probe.png`` (EER against layer index).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .. import metrics
from ..backends.stats import utterance_stats
from ..config import FrontendConfig
from ..data.dataset import ListSampler, Utterances, collate, length_buckets
from ..data.dataset_folder import DatasetFolder, Trials, check_dataset, open_dataset
from ..frontends import build_frontend, guess_frontend
from ..frontends.cache import audio_stamp, open_existing
from ..frontends.whisper import WhisperFrontend
from ..utils import atomic_savefig, atomic_write_text
from ..whitening import fit_whitening

_log = logging.getLogger("layersv")


def frozen_frontend(frontend: str, backbone_cfg: str, layers: list[int] | None = None, device: str = "cpu",
                    base=None):
    """A frozen frontend (eval mode, no gradients) keeping the hidden states ``layers`` (None = all).

    ``base``: a :class:`layersv.config.FrontendConfig` whose other fields (keep_layer0, pad_30s, ...) to keep.
    """
    cfg = dataclasses.replace(base or FrontendConfig(), frontend=frontend, backbone_cfg=backbone_cfg,
                              layers=list(layers or []), frz_pretrain=True)
    fr = build_frontend(cfg).to(device)
    for p in fr.parameters():
        p.requires_grad_(False)
    return fr.eval()


@torch.no_grad()
def layer_statistics(frontend, ds: DatasetFolder, keys: list[str], infos: dict, batch_sec: float = 60.0,
                     max_sec: float = 0.0, device: str = "cpu", progress: bool = True,
                     desc: str = "statistics") -> tuple[list[str], np.ndarray]:
    """One encoder pass per utterance → ``(sorted keys, stats (N, L, 2D) float32)``."""
    keys = sorted(set(keys))
    if max_sec <= 0 and isinstance(frontend, WhisperFrontend):
        max_sec = 30.0  # Whisper's positional table ends at 30 s
    durs = [min(infos[k].duration, max_sec) if max_sec else infos[k].duration for k in keys]
    batches = length_buckets(durs, batch_sec)
    dset = Utterances([(str(ds.abspath(k)), k) for k in keys], int(frontend.sample_rate), max_sec)
    loader = DataLoader(dset, batch_sampler=ListSampler(batches), collate_fn=collate)
    index = {k: i for i, k in enumerate(keys)}
    out = None
    bar = tqdm(total=sum(durs), desc=desc, disable=not progress, unit="s", leave=False,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]")
    for b in loader:
        hidden, lengths = frontend(b.wav.to(device), b.lengths.to(device))
        s = utterance_stats(hidden, lengths).cpu().numpy()
        if out is None:
            out = np.zeros((len(keys),) + s.shape[1:], dtype=np.float32)
        for i, k in enumerate(b.keys):
            out[index[k]] = s[i]
        bar.update(float(b.lengths.sum()) / frontend.sample_rate)
    bar.close()
    return keys, out


def existing_cache(frontend, frontend_name: str, ds: DatasetFolder, root: str | Path = "", dtype: str = "float16"):
    """The feature cache ``layersv cache`` (or ``fit`` with ``cache: true``) built for this frontend and dataset,
    opened read-only, or None (:func:`layersv.frontends.cache.open_existing`; shards are never rebuilt here)."""

    return open_existing(frontend, frontend_name, ds, root or Path(ds.root) / ".layersv_cache", dtype)


def statistics(frontend, frontend_name: str, ds: DatasetFolder, keys: list[str], infos: dict, use_cache: bool = True,
               cache_dir: str = "", batch_sec: float = 60.0, max_sec: float = 0.0, device: str = "cpu",
               progress: bool = True) -> tuple[list[str], np.ndarray]:
    """Per-layer statistics ``(sorted keys, (N, L, 2D))``: read from an existing feature cache for the keys it
    holds (unchanged audio, and only when ``max_sec`` is 0: the cache holds full utterances), the rest
    computed by :func:`layer_statistics`."""
    keys = sorted(set(keys))
    cache = existing_cache(frontend, frontend_name, ds, cache_dir) if use_cache and not max_sec else None
    have: dict[str, np.ndarray] = {}
    if cache is not None:
        stamps = {k: a for sh in cache.manifest["shards"].values() for k, a in zip(sh["keys"], sh["audio"])}
        for k in tqdm([k for k in keys if k in cache], desc="statistics (cache)", disable=not progress, leave=False):
            if stamps.get(k) == audio_stamp(ds.abspath(k)):
                h = torch.from_numpy(cache.get(k))[None]  # (1, L, T, D)
                have[k] = utterance_stats(h, torch.tensor([h.shape[2]]))[0].numpy()
        _log.info(f"statistics: {len(have)} of {len(keys)} utterances from the feature cache {cache.path}")
    rest = [k for k in keys if k not in have]
    if rest:
        rk, rs = layer_statistics(frontend, ds, rest, infos, batch_sec, max_sec, device, progress)
        have.update(zip(rk, rs))
    return keys, np.stack([have[k] for k in keys]).astype(np.float32)


def cosine_trials(vectors: np.ndarray, index: dict[str, int], trials: Trials) -> np.ndarray:
    """Cosine scores of ``trials`` between rows of ``vectors`` (any scale)."""
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    a = v[[index[k] for k in trials.enroll]]
    b = v[[index[k] for k in trials.test]]
    return (a * b).sum(1)


def score_layers(stats: np.ndarray, index: dict[str, int], train_rows: list[tuple[str, str]],
                 trials: dict[str, Trials], pca_dim: int = 0, lda: bool = True) -> list[dict]:
    """Per layer: whitening fitted on the training rows, metrics of every split's trials."""
    tr_idx = [index[p] for p, _ in train_rows]
    spk = [s for _, s in train_rows]
    rows = []
    for li in range(stats.shape[1]):
        x = stats[:, li].astype(np.float64)
        w = fit_whitening(x[tr_idx], spk, pca_dim=pca_dim, lda=lda)
        y = w.apply(x)
        row = {"index": li, "whitening": w.kind, "dim": int(w.transform.shape[1])}
        for split, t in trials.items():
            m = metrics.compute_all(cosine_trials(y, index, t), t.labels)
            raw = metrics.compute_all(cosine_trials(x, index, t), t.labels)
            row[split] = {"eer": m["eer"], "min_dcf_0.01": m["min_dcf_0.01"], "min_dcf_0.05": m["min_dcf_0.05"],
                          "raw_cosine_eer": raw["eer"]}
        rows.append(row)
    return rows


def best_layers(rows: list[dict], k: int = 1, split: str = "valid") -> list[int]:
    """Row indices of the ``k`` layers with the lowest ``split`` EER (ties: lower minDCF(0.01), then index)."""
    return sorted(range(len(rows)), key=lambda i: (rows[i][split]["eer"], rows[i][split]["min_dcf_0.01"], i))[:k]


def probe_markdown(res: dict) -> str:
    splits = res["splits"]
    head = "| hidden state | " + " | ".join(f"{s} EER % | {s} minDCF0.01 | {s} raw-cosine EER %" for s in splits)
    lines = [f"# Layer probe: {res['backbone']} on {res['dataset']}", "",
             f"Statistics: masked mean + std per hidden state; {res['rows'][0]['whitening']} fitted on "
             f"{res['train_utterances']} training utterances of {res['train_speakers']} speakers; cosine scoring. "
             "Best layer chosen on validation trials (lowest EER, ties broken by minDCF; marked *).", "",
             head + " |", "|---|" + "---|" * (3 * len(splits))]
    for r in res["rows"]:
        mark = "*" if r["layer"] == res["best_layer"] else ""
        cells = " | ".join(f"{r[s]['eer']:.2f} | {r[s]['min_dcf_0.01']:.3f} | {r[s]['raw_cosine_eer']:.2f}"
                           for s in splits)
        lines.append(f"| {r['layer']}{mark} | {cells} |")
    lines += ["", "Trials: " + ", ".join(f"{s} {res['trials'][s]['trials']} ({res['trials'][s]['targets']} targets)"
                                          for s in splits), ""]
    return "\n".join(lines)


def plot_probe(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    layers = [r["layer"] for r in res["rows"]]
    for s, style in zip(res["splits"], ("o-", "s--")):
        ax.plot(layers, [r[s]["eer"] for r in res["rows"]], style, label=f"{s} (whitened)")
    if "valid" in res["splits"]:
        ax.plot(layers, [r["valid"]["raw_cosine_eer"] for r in res["rows"]], ":", color="grey",
                label="valid (raw cosine)")
        b = next(r for r in res["rows"] if r["layer"] == res["best_layer"])
        ax.plot([b["layer"]], [b["valid"]["eer"]], "r*", markersize=14, label=f"best on valid: {b['layer']}")
    ax.set_xlabel("hidden state index")
    ax.set_ylabel("EER (%)")
    ax.set_xticks(layers)
    ax.set_title(f"{Path(res['backbone']).name}: speaker information per layer", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def probe_dataset(data_dir: str, backbone_cfg: str, out_dir: str | Path, frontend: str = "auto",
                  layers: list[int] | None = None, pca_dim: int = 0, lda: bool = True, batch_sec: float = 60.0,
                  max_sec: float = 0.0, use_cache: bool = True, cache_dir: str = "", device: str = "cpu",
                  progress: bool = True) -> dict:
    """``layersv probe``: per-layer EER / minDCF of a frozen encoder; writes probe.json / .md / .png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = open_dataset(data_dir)
    splits = tuple(s for s in ("valid", "test") if ds.has_trials(s))
    if not splits:
        raise ValueError(f"{ds.root}: no valid_trials.csv or test_trials.csv to score")
    infos = check_dataset(ds, splits)
    frontend = guess_frontend(backbone_cfg) if frontend == "auto" else frontend
    fr = frozen_frontend(frontend, backbone_cfg, layers, device)
    trials = {s: ds.trials(s) for s in splits}
    keys = [p for p, _ in ds.train] + [k for t in trials.values() for k in t.utterances]
    keys, stats = statistics(fr, frontend, ds, keys, infos, use_cache, cache_dir, batch_sec, max_sec, device, progress)
    index = {k: i for i, k in enumerate(keys)}
    rows = score_layers(stats, index, ds.train, trials, pca_dim, lda)
    layer_ids = list(getattr(fr, "layer_ids", range(stats.shape[1])))
    for r in rows:
        r["layer"] = int(layer_ids[r.pop("index")])
    sel = "valid" if "valid" in splits else splits[0]
    res = {"dataset": ds.name, "data_dir": str(ds.root), "backbone": backbone_cfg, "frontend": frontend,
           "layer_ids": layer_ids, "pca_dim": pca_dim, "lda": lda, "train_utterances": len(ds.train),
           "train_speakers": len(ds.speakers), "splits": list(splits), "selected_on": sel,
           "trials": {s: {"trials": len(t), "targets": int(t.labels.sum())} for s, t in trials.items()},
           "rows": rows, "best_layer": rows[best_layers(rows, 1, sel)[0]]["layer"],
           "ranking": [rows[i]["layer"] for i in best_layers(rows, len(rows), sel)]}
    atomic_write_text(out / "probe.json", json.dumps(res, indent=2) + "\n")
    atomic_write_text(out / "probe.md", probe_markdown(res))
    plot_probe(res, out / "probe.png")
    return res
