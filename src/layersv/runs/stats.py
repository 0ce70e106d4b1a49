"""``layersv train DATA Stats``: the training-free backend, fitted instead of trained.

1. Per-layer statistics (masked mean ‖ std) of the training utterances and of the validation
   trials' utterances, one frozen-encoder pass per utterance (or read from an existing
   ``layersv cache`` of the encoder: :func:`layersv.analysis.probe.statistics`).
2. Layer choice: ``--layers 1,2`` uses those hidden states; ``--layers auto`` (the default of the
   built-in ``Stats`` config) probes every layer (:mod:`layersv.analysis.probe`) and selects greedily on the
   **validation** trials: the best single layer, then the next-best layers by the probe's ranking
   while adding one lowers the validation EER of the concatenation (at most ``MAX_AUTO_LAYERS``).
3. :meth:`layersv.backends.stats.Stats.fit_whitening` on the training statistics only.
4. A normal run folder: config.yaml (with the resolved layers and ``embedding_dim``), training.log,
   metrics.csv (one row), model_best = model_last (safetensors + JSON), layer_selection.json; then
   :func:`layersv.runs.fit` writes the test report through :func:`layersv.runs.evaluate.evaluate_split`
   (the test utterances are embedded by the saved model from waveforms, as ``layersv eval`` does).

Training utterances and evaluation utterances are cut to ``data.eval_max_sec`` when it is > 0.
When the statistics come from an fp16 feature cache, the transform is fitted on statistics of
fp16-rounded hidden states while the saved model computes them in float32 (relative error ~1e-3).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .. import metrics
from ..analysis.probe import best_layers, cosine_trials, frozen_frontend, score_layers, statistics
from ..backends.stats import Stats
from ..config import Config, ConfigError, save_config, to_dict
from ..data.dataset_folder import DatasetFolder
from ..model import SpeakerEncoder, save_model
from ..utils import atomic_write_text
from ..whitening import fit_whitening
from .folder import Run, open_run, write_metrics

MAX_AUTO_LAYERS = 4


def _layer_spec(cfg: Config) -> list[int] | None:
    """``frontend.layers`` → explicit indices, or None for ``auto``."""
    spec = list(cfg.frontend.layers)
    if spec in ([], ["auto"]):
        return None if spec == ["auto"] else []
    if any(isinstance(x, bool) or not isinstance(x, int) for x in spec):
        raise ConfigError(f"--layers: expected 'auto' or comma-separated hidden-state indices, got {spec}")
    return sorted(set(spec))


def _valid_eer(stats: np.ndarray, index: dict, train_rows, trials, cols: list[int], backend_args: dict) -> float:
    x = stats[:, cols].reshape(len(stats), -1).astype(np.float64)
    w = fit_whitening(x[[index[p] for p, _ in train_rows]], [s for _, s in train_rows],
                      pca_dim=backend_args.get("pca_dim", 0), lda=backend_args.get("lda", True),
                      lda_dim=backend_args.get("lda_dim", 0))
    return metrics.eer(cosine_trials(w.apply(x), index, trials), trials.labels)


def select_layers(stats: np.ndarray, index: dict, train_rows, trials, ranking: list[int], backend_args: dict,
                  log) -> tuple[list[int], list[dict]]:
    """Greedy forward selection over ``ranking`` (column indices) on validation EER; returns (cols, steps)."""
    chosen = [ranking[0]]
    best = _valid_eer(stats, index, train_rows, trials, chosen, backend_args)
    steps = [{"columns": list(chosen), "valid_eer": best, "kept": True}]
    for c in ranking[1:]:
        if len(chosen) >= MAX_AUTO_LAYERS:
            break
        e = _valid_eer(stats, index, train_rows, trials, sorted(chosen + [c]), backend_args)
        kept = e < best
        steps.append({"columns": sorted(chosen + [c]), "valid_eer": e, "kept": kept})
        log.info(f"layer selection: + column {c} -> valid EER {e:.2f} % ({'kept' if kept else 'rejected'})")
        if kept:
            chosen, best = sorted(chosen + [c]), e
        else:
            break
    return chosen, steps


def _choose_layers(cfg: Config, fr, stats: np.ndarray, index: dict, train_rows, valid, spec, log) -> tuple:
    """Given layers (``spec``), or ``auto``: probe and select on validation → (frontend keeping only the
    chosen states, stats ``(N, L', 2D)``, layer ids, layer_selection.json dict)."""
    fc = cfg.frontend
    ids = list(getattr(fr, "layer_ids", range(stats.shape[1])))
    selection: dict = {"mode": "auto" if spec is None else "given"}
    if spec is None:
        rows = score_layers(stats, index, train_rows, {"valid": valid}, cfg.model.args.get("pca_dim", 0),
                            cfg.model.args.get("lda", True))
        ranking = best_layers(rows, len(rows), "valid")
        cols, steps = select_layers(stats, index, train_rows, valid, ranking, cfg.model.args, log)
        selection.update(probe=[{"layer": ids[r["index"]], "valid_eer": r["valid"]["eer"]} for r in rows],
                         steps=[{"layers": [ids[c] for c in s["columns"]], "valid_eer": s["valid_eer"],
                                "kept": s["kept"]} for s in steps])
        stats, ids = stats[:, cols], [ids[c] for c in cols]
        fr = frozen_frontend(fc.frontend, fc.backbone_cfg, ids, cfg.device, base=fc)  # only the chosen states
    return fr, stats, ids, selection


def fit_stats(cfg: Config, run_dir: str | Path, ds: DatasetFolder, infos: dict, progress: bool = True,
              command: str = "") -> Run:
    """Fit the ``Stats`` backend of ``cfg`` into ``run_dir`` → the opened :class:`Run` (evaluated by ``fit``)."""
    t0 = time.time()
    run_dir = Path(run_dir)
    run = open_run(cfg, run_dir, ds, infos, command, save=False, log_config=False)
    log, train_rows, spec = run.log, run.train_rows, _layer_spec(cfg)
    valid = ds.trials("valid")
    fc = cfg.frontend
    fr = frozen_frontend(fc.frontend, fc.backbone_cfg, spec or None, cfg.device, base=fc)
    keys = [p for p, _ in train_rows] + valid.utterances
    keys, stats = statistics(fr, fc.frontend, ds, keys, infos, True, fc.cache_dir, cfg.data.eval_batch_sec,
                             cfg.data.eval_max_sec, cfg.device, progress)
    index = {k: i for i, k in enumerate(keys)}
    fr, stats, ids, selection = _choose_layers(cfg, fr, stats, index, train_rows, valid, spec, log)
    selection["layers"] = ids
    log.info(f"Stats backend on hidden states {ids}")
    backend = Stats(len(ids), fr.dim, **{k: v for k, v in cfg.model.args.items() if k != "embedding_dim"})
    tr = stats[[index[p] for p, _ in train_rows]].reshape(len(train_rows), -1)
    kind = backend.fit_whitening(tr, [s for _, s in train_rows])
    log.info(f"whitening: {kind}, {backend.in_features} statistics -> {backend.embedding_dim} dimensions "
             "(fitted on the training utterances only; PLDA not implemented: cosine scoring)")
    cfg.frontend.layers = list(ids)
    cfg.frontend.frz_pretrain = True
    cfg.model.args = {**cfg.model.args, "embedding_dim": backend.embedding_dim}
    save_config(cfg, run_dir / "config.yaml")
    log.info("config: " + json.dumps(to_dict(cfg)))
    model = SpeakerEncoder(fr, backend, fc.frontend, "Stats", cfg.model.args)
    with torch.no_grad():
        emb = backend.project(torch.from_numpy(stats.reshape(len(stats), -1)).to(backend.mean.device))
    va = metrics.compute_all(cosine_trials(emb.cpu().numpy(), index, valid), valid.labels)
    selection.update(whitening=kind, embedding_dim=backend.embedding_dim, valid=va)
    atomic_write_text(run_dir / "layer_selection.json", json.dumps(selection, indent=2) + "\n")
    msg = f"fitted: valid EER {va['eer']:.2f} % minDCF0.01 {va['min_dcf_0.01']:.4f} (hidden states {ids}, {kind})"
    log.info(msg)
    print(msg, flush=True)
    for name in ("model_best", "model_last"):
        save_model(model, run_dir / name, step=0, valid=va)
    write_metrics(run_dir, [{"cycle": 1, "step": 0, "valid_eer": va["eer"], "valid_min_dcf_0.01": va["min_dcf_0.01"],
                             "valid_min_dcf_0.05": va["min_dcf_0.05"], "best_valid_eer": va["eer"],
                             "elapsed_s": time.time() - t0}])
    run.selected = {"step": 0, "valid": va}
    return run
