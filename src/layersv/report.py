"""Run reports: ``report.json`` (stable keys, read by scripts), ``report.md``, ``det.png``, ``score_hist.png``.

``report.json``: ``{"dataset", "trials", "targets", "stages": {stage: {"eer" (%),
"min_dcf_0.01", "min_dcf_0.05"[, "cllr", "act_dcf_0.01", "act_dcf_0.05"]}}, ...,
"operating_points": {"final_stage", "fitted_on", "eer_valid": {stage: threshold},
"bayes_llr": {"0.01": t, "0.05": t}}}`` (thresholds also stored in ``calibration.json``).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .data.dataset_folder import Trials
from .utils import atomic_savefig, atomic_write_text

CALIBRATED_STAGES = {"qmf", "calibrated", "fusion"}  # their scores are natural-log LLRs


def write_scores(path: str | Path, trials: Trials, scores: np.ndarray) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["LABEL", "SAMPLE1", "SAMPLE2", "SCORE"])
    for lab, a, b, s in zip(trials.labels, trials.enroll, trials.test, scores):
        w.writerow([int(lab), a, b, f"{s:.6f}"])
    atomic_write_text(path, buf.getvalue())


def read_scores(path: str | Path) -> tuple[Trials, np.ndarray]:
    """A score file :func:`write_scores` wrote (``LABEL,SAMPLE1,SAMPLE2,SCORE``) → (trials, scores ``(N,)``)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"score file not found: {p}")
    rows = list(csv.DictReader(p.read_text(encoding="utf-8").splitlines()))
    if not rows or not {"LABEL", "SAMPLE1", "SAMPLE2", "SCORE"} <= set(rows[0]):
        raise ValueError(f"{p}: not a score file (LABEL,SAMPLE1,SAMPLE2,SCORE) or no trials")
    try:
        labels = np.array([int(r["LABEL"]) for r in rows])
        scores = np.array([float(r["SCORE"]) for r in rows])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{p}: bad LABEL or SCORE ({e})") from None
    return Trials(labels, [r["SAMPLE1"] for r in rows], [r["SAMPLE2"] for r in rows], str(p)), scores


def stage_metrics(stage_scores: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, dict[str, float]]:
    return {
        st: {k: v for k, v in metrics.compute_all(s, labels, calibrated=st in CALIBRATED_STAGES).items()
             if k not in ("trials", "targets")}
        for st, s in stage_scores.items()
    }


def markdown_table(report: dict) -> str:
    stages = report["stages"]
    keys = ["eer", "min_dcf_0.01", "min_dcf_0.05", "cllr", "act_dcf_0.01", "act_dcf_0.05"]
    keys = [k for k in keys if any(k in v for v in stages.values())]
    head = "| stage | " + " | ".join("EER %" if k == "eer" else k for k in keys) + " |"
    rows = [head, "|" + "---|" * (len(keys) + 1)]
    for st, v in stages.items():
        rows.append(f"| {st} | " + " | ".join(f"{v[k]:.4f}" if k in v else "–" for k in keys) + " |")
    return "\n".join(rows)


def write_report(run_dir: str | Path, report: dict[str, Any], stage_scores: dict[str, np.ndarray],
                 labels: np.ndarray, title: str = "", name: str = "") -> None:
    """Write report.json, report.md, det.png and score_hist.png into ``run_dir``; with ``name``
    (``layersv eval --trials NAME``) report_<name>.json/.md, det_<name>.png, score_hist_<name>.png
    beside them, never over them."""
    run_dir = Path(run_dir)
    sfx = f"_{name}" if name else ""
    atomic_write_text(run_dir / f"report{sfx}.json", json.dumps(report, indent=2, sort_keys=False) + "\n")
    lines = [f"# {title or 'layersv report'}", "",
             f"Dataset: `{report['dataset']}` — {report['trials']} trials, {report['targets']} targets.", "",
             markdown_table(report), ""]
    for k in ("model", "selected_step", "valid_eer", "run"):
        if k in report:
            lines.append(f"- {k}: {report[k]}")
    ops = report.get("operating_points") or {}
    if ops.get("eer_valid") or ops.get("bayes_llr"):
        lines += ["", f"Operating points (fitted on {ops.get('fitted_on', 'validation')}; "
                  f"final stage `{ops.get('final_stage', '?')}`):", ""]
        for st, t in (ops.get("eer_valid") or {}).items():
            lines.append(f"- EER threshold of `{st}` on validation: {t:.4f}")
        for p, t in (ops.get("bayes_llr") or {}).items():
            lines.append(f"- Bayes threshold of the calibrated LLR at p_target {p}: {t:.4f}")
    lines += ["", f"![DET curves](det{sfx}.png)", "", f"![Score histograms](score_hist{sfx}.png)", ""]
    atomic_write_text(run_dir / f"report{sfx}.md", "\n".join(lines))
    plot_det(run_dir / f"det{sfx}.png", stage_scores, labels, title or report["dataset"])
    plot_score_hist(run_dir / f"score_hist{sfx}.png", stage_scores, labels, title or report["dataset"])


def plot_score_hist(path: str | Path, stage_scores: dict[str, np.ndarray], labels: np.ndarray,
                    title: str = "") -> None:
    """Target / non-target score histograms, one panel per stage (the stages have different scales)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(stage_scores)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
    lab = np.asarray(labels).astype(bool)
    for ax, (st, s) in zip(axes[0], stage_scores.items()):
        s = np.asarray(s)
        bins = np.linspace(float(s.min()), float(s.max()) + 1e-9, 41)
        ax.hist(s[~lab], bins=bins, density=True, alpha=0.6, label="non-target")
        ax.hist(s[lab], bins=bins, density=True, alpha=0.6, label="target")
        ax.set_title(st + (" (LLR)" if st in CALIBRATED_STAGES else ""), fontsize=9)
        ax.set_xlabel("score")
    axes[0][0].set_ylabel("density")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Scores — {title}", fontsize=10)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def plot_det(path: str | Path, stage_scores: dict[str, np.ndarray], labels: np.ndarray, title: str = "") -> None:
    """DET curves (miss vs false-alarm probability on normal-deviate axes), one per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ticks = np.array([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    for st, s in stage_scores.items():
        d = metrics.det_curve(s, labels)
        eer = metrics.eer(s, labels)
        ax.plot(metrics.probit(d["p_fa"]), metrics.probit(d["p_miss"]), label=f"{st} (EER {eer:.2f} %)")
    t = metrics.probit(ticks)
    ax.set_xticks(t, [f"{100 * x:g}" for x in ticks])
    ax.set_yticks(t, [f"{100 * x:g}" for x in ticks])
    lim = (metrics.probit(np.array([0.0005]))[0], metrics.probit(np.array([0.5]))[0])
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.plot(lim, lim, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("false-alarm probability (%)")
    ax.set_ylabel("miss probability (%)")
    ax.set_title(f"DET — {title}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
