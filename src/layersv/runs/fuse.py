"""``layersv fuse RUN[:STAGE] RUN[:STAGE] ... --out DIR``: several evaluated runs → one fused system.

Each run must have been evaluated on the same dataset's trials (``layersv eval``, which writes
``scores/valid_<stage>.csv`` and ``scores/test_<stage>.csv``).  The fusion weights are fitted on the
validation trials (:func:`layersv.scoring.fusion.fit_fusion`), applied to the test trials, and DIR gets
a report like a run's: ``report.json`` (stage ``fusion``: calibrated LLRs, so Cllr and actual DCF
too; each system's own test stage beside it; ``valid_stages``; ``fusion``: systems, stages, weights),
``report.md``, ``det.png``, ``scores/test_fusion.csv`` and ``fusion.json`` (the fitted fusion).

``STAGE`` (``cosine``, ``asnorm``, ``plda``, ``qmf``, …) defaults to the run's stage with the lowest
validation EER, a calibrated stage (``qmf``: fitted on those very trials) only when it is the only one:
selected on validation trials, never on test trials.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import metrics
from ..report import CALIBRATED_STAGES, read_scores, stage_metrics, write_report, write_scores
from ..scoring.fusion import align, fit_fusion
from ..utils import atomic_write_text


def parse_system(spec: str) -> tuple[Path, str]:
    """``RUN`` or ``RUN:STAGE`` → (run folder, stage or "auto")."""
    run, _, stage = spec.rpartition(":") if ":" in Path(spec).name else (spec, "", "auto")
    return Path(run), stage or "auto"


def pick_stage(run: Path, stage: str) -> str:
    """The stage to fuse: ``stage``, or (``auto``) the one with the lowest validation EER in report.json."""
    rep = run / "report.json"
    if not rep.is_file():
        raise FileNotFoundError(f"{run}: no report.json: evaluate the run first (layersv eval {run})")
    valid = json.loads(rep.read_text()).get("valid_stages") or {}
    have = sorted(st for st in valid if (run / "scores" / f"valid_{st}.csv").is_file())
    if stage == "auto":
        if not have:
            raise FileNotFoundError(f"{run}: no validation scores (scores/valid_<stage>.csv): evaluate the run "
                                    "again with this version (layersv eval) on a dataset with valid trials")
        fair = [st for st in have if st not in CALIBRATED_STAGES] or have  # qmf's validation EER is in-sample
        return min(fair, key=lambda st: valid[st]["eer"])
    if stage not in have:
        raise ValueError(f"{run}: stage {stage!r} has no validation scores (stages: {', '.join(have) or 'none'})")
    return stage


def split_scores(runs: list[Path], stages: list[str], names: list[str], split: str) -> tuple:
    """(the first run's ``split`` trials, scores ``(N, S)`` of every run aligned to them)."""
    read = [read_scores(run / "scores" / f"{split}_{st}.csv") for run, st in zip(runs, stages)]
    trials = read[0][0]
    keys = list(zip(trials.enroll, trials.test))
    return trials, np.stack([align(keys, list(zip(tr.enroll, tr.test)), s, f"{n} {split}")
                             for (tr, s), n in zip(read, names)], 1)


def fuse_runs(systems: list[str], out: str | Path, c: float = 1.0, seed: int = 0) -> dict:
    """Fit the fusion of ``systems`` (``RUN[:STAGE]``) on validation trials, score the test trials → report."""
    if len(systems) < 2:
        raise ValueError("fusion needs two or more runs")
    runs = [parse_system(s) for s in systems]
    stages = [pick_stage(run, st) for run, st in runs]
    names = [f"{run.name}:{st}" for (run, _), st in zip(runs, stages)]
    if len(set(names)) != len(names):
        raise ValueError(f"the same system twice: {names}")
    v_trials, v = split_scores([run for run, _ in runs], stages, names, "valid")
    t_trials, t = split_scores([run for run, _ in runs], stages, names, "test")
    fusion = fit_fusion(v, v_trials.labels, names, c=c, seed=seed)
    fused_valid, fused_test = fusion.llr(v), fusion.llr(t)
    test_stages = {"fusion": fused_test, **{n: t[:, i] for i, n in enumerate(names)}}
    valid_stages = {"fusion": fused_valid, **{n: v[:, i] for i, n in enumerate(names)}}
    first = json.loads((runs[0][0] / "report.json").read_text())
    report = {"dataset": first.get("dataset", ""), "split": first.get("split", "test"), "trials": len(t_trials),
              "targets": int(t_trials.labels.sum()), "stages": stage_metrics(test_stages, t_trials.labels),
              "model": "fusion", "run": str(Path(out)),
              "operating_points": {"final_stage": "fusion", "fitted_on": "validation trials of the fused runs",
                                   "eer_valid": {"fusion": metrics.eer_threshold(fused_valid, v_trials.labels)}},
              "valid_stages": stage_metrics(valid_stages, v_trials.labels),
              "fusion": {"systems": [str(r) for r, _ in runs], "stages": stages, "names": names,
                         "weights": dict(zip(names, (fusion.coef / fusion.feature_scale).tolist())),
                         "fitted_on": {"trials": len(v_trials), "targets": int(v_trials.labels.sum())}}}
    out = Path(out)
    (out / "scores").mkdir(parents=True, exist_ok=True)
    write_scores(out / "scores" / "test_fusion.csv", t_trials, fused_test)
    atomic_write_text(out / "fusion.json", json.dumps({"names": names, "systems": report["fusion"]["systems"],
                                                       "calibrator": fusion.to_dict()}, indent=2) + "\n")
    write_report(out, report, test_stages, t_trials.labels, title="fusion of " + " + ".join(names))
    return report


__all__ = ["fuse_runs", "parse_system", "pick_stage"]
