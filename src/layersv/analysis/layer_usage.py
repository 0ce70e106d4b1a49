"""Which hidden states a trained backend uses: learned layer weights or per-layer attention.

* Backends with global layer weights (SUPERB weighted sum, Yang et al. 2021) expose
  ``layer_weights() -> (L,)``; they are read from the checkpoint, no audio needed.
* Frame-adaptive backends (LAP / UniPool / L-TDNN layer attention) expose
  ``layer_attention(hidden (B, L, T, D), lengths (B,)) -> (B, L)`` or ``(B, T, L)``; it is
  averaged over valid frames and over the validation trials' utterances (at most
  ``max_utts``), and one utterance's ``(L, T)`` map is drawn as a heat map.

Writes ``layers.json`` (``{"backend", "layer_ids", "source", "weights": [...], ...}``),
``layers.png`` (bar chart) and, for frame-level attention, ``layers_time.png`` (layer × time heat
maps of a few validation utterances and their mean; the numbers in ``layers.json["heat_maps"]``,
:mod:`layersv.analysis.layer_maps`).  MHFA reports its key and its value aggregator's weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import load_config
from ..data.dataset import ListSampler, Utterances, collate, length_buckets
from ..data.dataset_folder import check_dataset, open_dataset
from ..model import load_model
from ..registries import registries
from ..utils import atomic_savefig, atomic_write_text
from .layer_maps import MapCollector, plot_maps


def _frame_attention(att: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` or ``(B, T, L)`` attention → ``(B, L)`` averaged over each item's valid frames."""
    if att.dim() == 2:
        return att.float()
    if att.dim() != 3:
        raise ValueError(f"layer_attention must return (B, L) or (B, T, L), got {tuple(att.shape)}")
    m = (torch.arange(att.shape[1], device=att.device)[None] < lengths[:, None]).float()  # (B, T)
    return (att.float() * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1.0)


@torch.no_grad()
def attention_usage(model, ds, keys: list[str], infos: dict, max_utts: int = 64, batch_sec: float = 60.0,
                    device: str = "cpu", collect=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean per-layer attention ``(L,)`` over ``keys`` and one utterance's ``(L, T)`` map (or None).
    ``collect``: a :class:`layersv.analysis.layer_maps.MapCollector` fed every batch (layer × time maps, MHFA key/value)."""
    keys = sorted(keys)[:max_utts]
    dset = Utterances([(str(ds.abspath(k)), k) for k in keys], model.sample_rate)
    batches = length_buckets([infos[k].duration for k in keys], batch_sec)
    total, n, heat = None, 0, None
    for b in DataLoader(dset, batch_sampler=ListSampler(batches), collate_fn=collate):
        hidden, lengths = model.frontend(b.wav.to(device), b.lengths.to(device))
        att = model.backend.layer_attention(hidden, lengths)
        if collect is not None:
            collect.add(model.backend, att, lengths, b.keys)
        per = _frame_attention(att, lengths).sum(0).cpu()
        total = per if total is None else total + per
        n += att.shape[0]
        if heat is None and att.dim() == 3:
            heat = att[0, : int(lengths[0])].float().T.cpu().numpy()  # (L, T)
    return (total / max(n, 1)).numpy(), heat


def plot_layers(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ids = res["layer_ids"]
    ax.bar(range(len(ids)), res["weights"], color="tab:blue")
    ax.set_xticks(range(len(ids)), [str(i) for i in ids])
    ax.set_xlabel("hidden state index")
    ax.set_ylabel("weight" if res["source"] == "layer_weights" else "mean attention")
    ax.set_title(f"{res['backend']}: learned layer usage ({res['source']})", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def layer_usage(run_dir: str | Path, out_dir: str | Path | None = None, max_utts: int = 64,
                device: str = "cpu", heat_utts: int = 4) -> dict:
    """``layersv layers RUN``: layers.json + layers.png (+ layers_time.png) in ``out_dir`` (default RUN).

    Frame-level layer attention also gives ``heat_maps`` (:mod:`layersv.analysis.layer_maps`: the ``(L, T)`` maps
    of ``heat_utts`` validation utterances and the relative-time mean ``(L, 50)``) and, for MHFA,
    ``key_weights`` and ``value_weights`` (``weights`` are the value aggregator's, as before)."""
    run = Path(run_dir)
    out = Path(out_dir) if out_dir else run
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(run, device)
    be = model.backend
    ids = [int(i) for i in getattr(model.frontend, "layer_ids", range(model.frontend.num_layers))]
    res = {"run": str(run), "backend": model.backend_name, "layer_ids": ids}
    if callable(getattr(be, "layer_weights", None)):  # static weights: read from the checkpoint, exact
        w = be.layer_weights().detach().float().cpu().numpy()
        res.update(source="layer_weights")
    elif callable(getattr(be, "layer_attention", None)):  # frame-adaptive: averaged over validation audio
        cfg = load_config(run / "config.yaml", registries())
        ds = open_dataset(cfg.data.data_dir, need_train=False)
        infos = check_dataset(ds, ("valid",), include_train=False)
        keys = ds.trials("valid").utterances
        maps = MapCollector(len(ids), heat_utts)  # layer × time maps, MHFA key and value weights
        w, _ = attention_usage(model, ds, keys, infos, max_utts, cfg.data.eval_batch_sec, device, maps)
        res.update(source="layer_attention", utterances=min(len(keys), max_utts), **maps.result())
    else:
        raise ValueError(f"backend {model.backend_name!r} learns no layer weights or layer attention "
                         f"(it uses hidden states {ids} as configured)")
    if w.shape != (len(ids),):
        raise ValueError(f"backend returned {w.shape} layer weights for {len(ids)} hidden states")
    res["weights"] = [float(x) for x in w]
    res["ranking"] = [ids[i] for i in np.argsort(-w, kind="stable")]
    plot_layers(res, out / "layers.png")
    if res.get("heat_maps"):
        plot_maps(res["heat_maps"], ids, float(getattr(model.frontend, "frame_rate", 50.0)), out / "layers_time.png",
                  f"{model.backend_name}: layer attention over time (validation utterances)")
        res["heat_map"] = str(out / "layers_time.png")
    atomic_write_text(out / "layers.json", json.dumps(res, indent=2) + "\n")
    return res
