"""Evaluation of a run: embeddings → scoring stages → metrics, report and stored operating points.

Stages (each a column of the report):

* ``cosine``: raw cosine;
* ``mean_sub``: cosine after subtracting the mean embedding of training utterances (LAP's
  "naive" evaluation);
* ``asnorm`` (``eval.score_normalize``): adaptive s-norm of ``mean_sub`` with a top-k cohort
  (:mod:`layersv.scoring.asnorm`);
* ``plda`` (``eval.score_plda``): two-covariance PLDA LLR, fitted on training embeddings of
  speakers with several recordings (:mod:`layersv.scoring.plda`);
* ``qmf`` (``eval.score_calibrate``): QMF logistic-regression calibration of the last
  normalised stage, fitted on the **validation** trials of the training dataset and applied
  to the test trials → LLRs (:mod:`layersv.scoring.calibration`).

The fitted state (mean, cohort, PLDA, calibrator, thresholds) is stored in the run folder
(``scoring.npz``, ``calibration.json``) for ``layersv verify``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from .. import metrics
from ..checkpoint import read_description
from ..config import Config
from ..data.dataset_folder import DatasetFolder, check_dataset, open_dataset, probe_files, read_trials
from ..distributed import on_ranks, world_size
from ..embed.hidden import hidden_state_embeddings
from ..embed.ranks import drive, embed_on_ranks, serve
from ..embed.run_cache import extract_any, run_embeddings
from ..frontends.cache import all_layers_view, open_existing
from ..model import load_model
from ..report import stage_metrics, write_report, write_scores
from ..scoring.asnorm import prepare_cohort
from ..scoring.calibration import FEATURE_SETS, fit_qmf
from ..scoring.pipeline import ScoringPipeline
from ..scoring.plda import fit_speaker_plda, plda_training_rows
from ..utils import setup_run_logger, subsample
from .folder import load_run

_log = logging.getLogger("layersv")
OPERATING_PRIORS = (0.01, 0.05)


class _Embedder:
    """Cached embedding sets of one run (the model is loaded on the first cache miss)."""

    def __init__(self, run_dir: Path, cfg: Config, device: str, progress: bool, sharded: bool = False):
        self.run_dir, self.cfg, self.device, self.progress = run_dir, cfg, device, progress
        self.sharded = sharded  # under torchrun: misses are embedded by every rank (embed/ranks.py)
        self._model = None
        self._features: dict[str, object] = {}  # dataset root -> FeatureCache or None

    def feature_cache(self, ds: DatasetFolder):
        """The frozen encoder's feature cache of ``ds`` (``layersv cache``) when the run's frontend is
        frozen and its hidden states are cached with the same encoder, weights and layers; else None.

        Evaluating N backends on one frozen encoder then encodes no audio at all: the backend runs on
        the cached states (fp16 by default: embeddings within ~1e-3 of those from waveforms).
        """
        c = self.cfg
        if not c.frontend.frz_pretrain or c.eval.n_crops or c.data.eval_max_sec or not c.eval.feature_cache:
            return None
        root = str(ds.root)
        if root not in self._features:
            self._features[root] = _frontend_cache(self.model().frontend, c, ds)
        return self._features[root]

    def model(self):
        if self._model is None:
            self._model = load_model(self.run_dir, self.device)
        return self._model

    def __call__(self, set_name: str, ds: DatasetFolder, keys: list[str], infos) -> "object":
        c, e = self.cfg, self.cfg.eval
        missing = [k for k in set(keys) if k not in infos]
        if missing:
            more, problems = probe_files(ds, missing)
            if problems:
                raise ValueError(f"{len(problems)} unreadable file(s) for {set_name}: " + "; ".join(problems[:5]))
            infos = {**infos, **more}
        fc = self.feature_cache(ds)
        if fc is not None and fc.fresh(keys, ds):
            emb = self.extract("features", set_name, ds, keys, infos)
            return emb, np.array([infos[k].duration for k in emb.keys])
        emb = run_embeddings(self.run_dir, re.sub(r"[^\w.-]", "_", set_name), self.model, ds, keys, infos,
                                e.n_crops, e.crop_sec, c.data.eval_batch_sec, c.data.eval_max_sec, self.device,
                                c.workers, self.progress, use_cache=e.embedding_cache,
                                extract=lambda ks: self.extract("waveform", set_name, ds, ks, infos))
        return emb, np.array([infos[k].duration for k in emb.keys])

    def extract(self, mode: str, set_name: str, ds: DatasetFolder, keys: list[str], infos):
        """Embeddings ``(N, E)`` of ``keys``: here, or shared by the ranks when ``sharded``."""
        if self.sharded and world_size() > 1:
            return embed_on_ranks(self, mode, set_name, ds, keys, infos)
        return self.extract_local(mode, set_name, ds, keys, infos)

    def extract_local(self, mode: str, set_name: str, ds: DatasetFolder, keys: list[str], infos):
        """``features``: the backend on the frozen encoder's feature cache; ``waveform``: the model on audio."""
        if mode == "features":
            fc = self.feature_cache(ds)
            if fc is None:
                raise FileNotFoundError(f"no feature cache of this run's encoder for {ds.root} on this rank")
            return hidden_state_embeddings(self.model().backend, fc, keys, device=self.device)
        c, e = self.cfg, self.cfg.eval
        return extract_any(self.model(), ds, keys, infos, e.n_crops, e.crop_sec, c.data.eval_batch_sec,
                           c.data.eval_max_sec, self.device, c.workers, self.progress, desc=f"{set_name} embed")


def _frontend_cache(fr, cfg: Config, ds: DatasetFolder):
    """The cache of exactly this frontend, or a view on the layers it keeps of an all-layers cache."""
    root = cfg.frontend.cache_dir or Path(ds.root) / ".layersv_cache"
    args = (fr, cfg.frontend.frontend, ds, root, cfg.frontend.cache_dtype)
    return open_existing(*args) or all_layers_view(*args)


def train_mean(embedder: _Embedder, ds: DatasetFolder, train_rows, infos, cfg: Config) -> np.ndarray:
    """Mean L2-normalised embedding of up to ``eval.mean_sub_utts`` training utterances → ``(E,)``."""
    rows = subsample(sorted({p for p, _ in train_rows}), cfg.eval.mean_sub_utts, cfg.seed)
    emb, _ = embedder("train_mean", ds, rows, infos)
    return emb.matrix.astype(np.float64).mean(0).astype(np.float32)


def cohort_rows(ds: DatasetFolder, train_rows, cfg: Config) -> tuple[str, list[tuple[str, str]]]:
    """(source, rows): ``cohort.csv`` of the training dataset, or its training speakers; subsampled."""
    e = cfg.eval
    if e.cohort not in ("auto", "train", "cohort_csv"):
        raise ValueError(f"eval.cohort must be auto, train or cohort_csv, got {e.cohort!r}")
    use_csv = e.cohort == "cohort_csv" or (e.cohort == "auto" and (ds.root / "cohort.csv").is_file())
    rows = ds.read_list("cohort.csv") if use_csv else list(train_rows)
    rng = np.random.default_rng(cfg.seed + 1)
    by_spk: dict[str, list[str]] = {}
    for p, s in sorted(rows):
        by_spk.setdefault(s, []).append(p)
    spk = sorted(by_spk)
    if e.cohort_size and len(spk) > e.cohort_size:
        spk = [spk[i] for i in sorted(rng.choice(len(spk), e.cohort_size, replace=False))]
    out = []
    for s in spk:
        out += [(p, s) for p in subsample(by_spk[s], e.cohort_utts_per_speaker, cfg.seed)]
    return ("cohort.csv" if use_csv else "train"), out


def fit_plda(embedder: _Embedder, cfg: Config, ds: DatasetFolder, train_rows, infos):
    """Two-covariance PLDA on training embeddings: up to ``plda_speakers`` × ``plda_utts_per_speaker``."""
    e = cfg.eval
    rows = plda_training_rows(train_rows, e.plda_speakers, e.plda_utts_per_speaker, cfg.seed)
    n_speakers = len({s for _, s in rows})
    if n_speakers < 2:
        raise ValueError(f"{ds.root}: PLDA needs training speakers with two or more recordings each "
                         f"({n_speakers} found); drop --score_plda")
    emb, _ = embedder("plda_train", ds, [p for p, _ in rows], infos)
    spk_of = dict(rows)
    return fit_speaker_plda(emb.matrix, [spk_of[k] for k in emb.keys], e.plda_dim)


def fit_scoring(embedder: _Embedder, cfg: Config, ds: DatasetFolder, infos, train_rows, log) -> tuple:
    """Fit the scoring state on training/validation data → (pipeline, validation stage scores or None)."""
    e = cfg.eval
    pipe = ScoringPipeline(mean=train_mean(embedder, ds, train_rows, infos, cfg), top_k=e.asnorm_topk,
                           qmf_kind=e.qmf_features,
                           extraction={"n_crops": e.n_crops, "crop_sec": e.crop_sec,
                                       "max_sec": cfg.data.eval_max_sec})
    extra = {}
    if e.score_normalize:
        src, rows = cohort_rows(ds, train_rows, cfg)
        c_emb, _ = embedder("cohort", ds, [p for p, _ in rows], infos)
        spk_of = dict(rows)
        pipe.cohort = prepare_cohort(c_emb.matrix, [spk_of[k] for k in c_emb.keys], pipe.mean)
        extra["cohort_source"] = src
        log.info(f"AS-norm cohort: {pipe.cohort.shape[0]} speakers from {src}, top-k {e.asnorm_topk}")
    if e.score_plda:
        pipe.plda = fit_plda(embedder, cfg, ds, train_rows, infos)
        log.info(f"PLDA fitted: {pipe.plda.proj.shape[1]} dimensions")
    valid = None
    if ds.has_trials("valid"):
        vt = ds.trials("valid")
        v_emb, v_dur = embedder(f"{ds.name}_valid", ds, vt.utterances, infos)
        valid = pipe.uncalibrated(v_emb, vt)
        if e.score_calibrate:
            feats = pipe.features(v_emb, vt, valid[pipe.norm_stage], v_dur)
            pipe.calibrator = fit_qmf(feats, vt.labels, c=e.calibration_c, seed=cfg.seed,
                                      names=FEATURE_SETS[e.qmf_features])
            valid["qmf"] = pipe.calibrator.llr(feats)
        pipe.thresholds["eer_valid"] = {st: metrics.eer_threshold(s, vt.labels) for st, s in valid.items()}
        extra["valid_stages"] = stage_metrics(valid, vt.labels)
        extra["valid_scores"] = (vt, valid)  # scores/valid_<stage>.csv: what `layersv fuse` fits on
    elif e.score_calibrate:
        raise ValueError(f"{ds.root}: calibration needs valid_trials.csv (the calibrator is fitted on them)")
    if pipe.calibrator is not None:
        pipe.thresholds["bayes_llr"] = {str(p): metrics.bayes_threshold(p) for p in OPERATING_PRIORS}
    return pipe, extra


def resolve_trials(ds: DatasetFolder, spec: str):
    """``--trials NAME|FILE`` → (name, Trials): a trial file of the dataset folder (``<NAME>_trials.csv``
    or ``.txt``; ``vox1_e``, ``test``, …) or a path to any trial file whose paths are relative to the
    dataset's audio root."""
    p = Path(spec).expanduser()
    if p.is_file():
        name = re.sub(r"_trials$", "", re.sub(r"[^\w.-]", "_", p.stem))
        return name, read_trials(p)
    name = re.sub(r"_trials(\.csv|\.txt)?$", "", spec)
    if ds.has_trials(name):
        return name, ds.trials(name)
    have = sorted({re.sub(r"_trials$", "", f.stem) for f in ds.root.glob("*_trials.*") if f.suffix in (".csv", ".txt")})
    raise FileNotFoundError(f"--trials {spec!r}: neither a file nor a trial list of {ds.root} "
                            f"(available: {', '.join(have) or 'none'})")


def evaluate_split(run_dir: str | Path, cfg: Config, ds: DatasetFolder, infos, train_rows, eval_ds=None,
                   split: str = "test", device: str = "cpu", progress: bool = True, log=None,
                   trials_spec: str = "", selected: dict | None = None, out_dir: str | Path | None = None,
                   sharded: bool = False) -> dict:
    """Score ``split`` trials of ``eval_ds`` (default: the training dataset) with the run's best model.

    ``trials_spec`` (``layersv eval --trials NAME|FILE``) scores that trial list instead; its report is
    written next to the others (report_<name>.json/.md, scores/<name>_<stage>.csv), never over them,
    and the stored scoring state (scoring.npz, calibration.json) is left as it is; so is a
    cross-dataset evaluation (``eval_ds``: report_<dataset>_<split>.*).  ``out_dir`` (``--out DIR``)
    writes such a report into its own folder instead (DIR/report.json, report.md, det.png, scores/).
    ``selected``: the step / validation figures of model_best (read from ``model_best.json`` when None).
    ``sharded``: rank 0 of a torchrun job whose other ranks run :func:`layersv.embed.ranks.serve`."""
    log = log or _log
    run_dir = Path(run_dir)
    eval_ds = eval_ds or ds
    selected = selected if selected is not None else read_description(run_dir)
    embedder = _Embedder(run_dir, cfg, device, progress, sharded)
    named, split, trials, ev_infos = _trials_to_score(ds, eval_ds, infos, split, trials_spec)
    tag = f"{eval_ds.name}_{split}" if eval_ds is not ds else split
    named = named or (tag if eval_ds is not ds else "")  # cross-dataset: beside the run's own report, never over it
    where, name = report_place(run_dir, out_dir, tag if named else "")
    emb, durs = embedder(f"{eval_ds.name}_{split}", eval_ds, trials.utterances, ev_infos)
    pipe, extra = fit_scoring(embedder, cfg, ds, infos, train_rows, log)
    stages = pipe.score(emb, trials, durs)
    for st, s in stages.items():
        write_scores(where / "scores" / f"{tag}_{st}.csv", trials, s)
    vt, valid = extra.pop("valid_scores", (None, {}))
    if not named:
        for st, s in valid.items():
            write_scores(run_dir / "scores" / f"valid_{st}.csv", vt, s)
        pipe.save(run_dir, extra={"model": f"{selected.get('step', -1)}", **{k: v for k, v in extra.items()
                                                                             if k != "valid_stages"}})
    report = _report(run_dir, cfg, ds, eval_ds, split, trials, stages, pipe, extra, selected)
    if trials_spec:
        report["trials_file"] = trials.source
    write_report(where, report, stages, trials.labels, title=f"{cfg.model.model} on {eval_ds.name} ({split})",
                 name=name)
    for st, m in report["stages"].items():
        cal = f" | Cllr {m['cllr']:.4f} actDCF0.01 {m['act_dcf_0.01']:.4f}" if "cllr" in m else ""
        log.info(f"{split} [{st}] EER {m['eer']:.2f} % | minDCF0.01 {m['min_dcf_0.01']:.4f} | "
                 f"minDCF0.05 {m['min_dcf_0.05']:.4f}{cal}")
    return report


def report_place(run_dir: Path, out_dir: str | Path | None, named: str) -> tuple[Path, str]:
    """(folder, report name) of an evaluation: the run folder (its own report, or ``report_<named>.*``
    beside it), or ``out_dir`` for a named (cross-dataset / other trials) evaluation: plain ``report.*``
    there.  The run's own report is never the target of a named evaluation."""
    if out_dir is None or Path(out_dir).resolve() == run_dir.resolve():
        return run_dir, named
    if not named:
        raise ValueError("--out DIR is the report folder of a cross-dataset evaluation (--eval_data) or of "
                         "another trial list (--trials); the run's own test report stays in the run folder")
    out = Path(out_dir)
    (out / "scores").mkdir(parents=True, exist_ok=True)
    return out, ""


def _trials_to_score(ds: DatasetFolder, eval_ds: DatasetFolder, infos, split: str, trials_spec: str) -> tuple:
    """(name of a ``--trials`` list or "", split name, Trials, checked files of their utterances)."""
    if not trials_spec:
        ev_infos = infos if eval_ds is ds else check_dataset(eval_ds, (split,), include_train=False)
        return "", split, eval_ds.trials(split), ev_infos
    named, trials = resolve_trials(eval_ds, trials_spec)
    ev_infos, bad = probe_files(eval_ds, trials.utterances)
    if bad:
        raise ValueError(f"{trials.source}: {len(bad)} problem(s): " + "; ".join(bad[:5]))
    return named, named, trials, ev_infos


def _report(run_dir: Path, cfg: Config, ds, eval_ds, split: str, trials, stages: dict, pipe, extra: dict,
            selected: dict) -> dict:
    """report.json's content: stage metrics, the selected model, the stored operating points."""
    report = {
        "dataset": eval_ds.name, "split": split, "trials": int(len(trials)), "targets": int(trials.labels.sum()),
        "stages": stage_metrics(stages, trials.labels),
        "model": cfg.model.model, "backbone": cfg.frontend.backbone_cfg,
        "selected_step": int(selected.get("step", -1)),
        "valid_eer": float(selected.get("valid", {}).get("eer", float("nan"))),
        "run": str(run_dir),
        "operating_points": {"final_stage": pipe.final_stage, "fitted_on": f"{ds.name} valid", **pipe.thresholds},
    }
    if "valid_stages" in extra:
        report["valid_stages"] = extra["valid_stages"]
    return report


def evaluate_run(run_dir: str | Path, eval_data: str = "", device: str = "cpu", progress: bool = True,
                 overrides: dict | None = None, trials: str = "", out: str | Path = "") -> dict:
    """``layersv eval RUN``: test trials of the run's dataset (or of ``eval_data``) with its best model.

    ``overrides``: config leaf keys for this evaluation (``score_normalize``, ``n_crops``, ``workers`` …).
    ``trials``: ``--trials NAME|FILE``, another trial list of that dataset folder (``vox1_e``) or a
    trial file; written as report_<name>.* next to the run's own report.  ``out``: the report folder of
    such an evaluation (or of ``eval_data``'s) instead.
    Under torchrun every rank embeds a shard of the utterances and rank 0 alone scores and writes
    (:mod:`layersv.embed.ranks`); the other ranks return ``{}``.
    """
    if out and not (eval_data or trials):
        report_place(Path(run_dir), out, "")  # raises: --out needs --eval_data or --trials
    run = load_run(run_dir, overrides)  # a clear error before any work: not a run, or an old pickled checkpoint
    with on_ranks(device) as (device, main):  # under torchrun: rank 0 scores, every rank embeds
        if not main:
            serve(_Embedder(run.run_dir, run.cfg, device, False))
            return {}
        return drive(lambda: _evaluate_main(run, eval_data, device, progress, trials, out))


def _evaluate_main(run, eval_data: str, device: str, progress: bool, trials: str, out) -> dict:
    log = setup_run_logger(run.run_dir)
    ds = run.ds
    eval_ds = open_dataset(eval_data, need_train=False) if eval_data else None
    splits = tuple(s for s in ("valid", "test") if (s == "valid" and ds.has_trials("valid")) or
                   (s == "test" and eval_ds is None and not trials))
    infos = check_dataset(ds, splits, include_train=False)
    return evaluate_split(run.run_dir, run.cfg, ds, infos, ds.train, eval_ds=eval_ds, device=device, progress=progress,
                          log=log, trials_spec=trials, selected=run.selected, out_dir=out or None,
                          sharded=world_size() > 1)


__all__ = ["evaluate_split", "evaluate_run", "fit_scoring", "train_mean"]
