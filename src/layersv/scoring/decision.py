"""A run's stored scoring state and its operating point: the decision of ``verify`` / ``identify``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..metrics import bayes_threshold
from .calibration import posterior
from .pipeline import ScoringPipeline


def scoring_state(run: str | Path):
    """``(ScoringPipeline, stored)``: the run's fitted scoring state, or a bare cosine one (``stored`` False)."""
    pipe = ScoringPipeline.load(run)
    return (pipe, True) if pipe is not None else (ScoringPipeline(), False)


def decide(pipe, score: float | np.ndarray, p_target: float = 0.01, stored: bool = True,
           run: str | Path = "RUN") -> dict:
    """The run's operating point applied to final-stage ``score`` (a float, or ``(N,)`` for many trials).

    Returns ``{"calibrated", "threshold", "threshold_kind", "accept", "posterior" (calibrated only)}``:
    a calibrated run decides at the Bayes threshold of the LLR at ``p_target``; otherwise at the
    final stage's validation EER threshold; ``accept`` is ``None`` when no threshold is stored.
    """
    s = np.asarray(score, dtype=np.float64)
    out = {"calibrated": pipe.calibrator is not None}
    if pipe.calibrator is not None:
        out["threshold"] = bayes_threshold(p_target)
        out["threshold_kind"] = f"Bayes threshold of the LLR at p_target {p_target:g}"
        p = posterior(s, p_target)
        out["posterior"] = float(p) if p.ndim == 0 else p
    else:
        thr = pipe.thresholds.get("eer_valid", {}).get(pipe.final_stage)
        out["threshold"] = None if thr is None else float(thr)
        out["threshold_kind"] = (f"EER threshold of {pipe.final_stage} on validation trials" if thr is not None else
                                 "none stored" + ("" if stored else f" (run `layersv eval {run}` first)"))
    if out["threshold"] is None:
        out["accept"] = None
    else:
        acc = s >= out["threshold"]
        out["accept"] = bool(acc) if acc.ndim == 0 else acc
    return out
