"""Linear logistic-regression score fusion of several systems scored on the same trials.

The fusion of every NIST SRE / VoxSRC submission (Brümmer & du Preez, "Application-independent
evaluation of speaker detection", 2006; the FoCal toolkit): the fused score of a trial is
``w · s + b`` over the systems' scores ``s (S,)``, the weights fitted by logistic regression on
*validation* trials, so the output is a calibrated natural-log likelihood ratio (the training prior
log-odds subtracted) and one system that adds nothing gets a weight near zero.

Implementation: :func:`layersv.scoring.calibration.fit_qmf` with the systems' scores as the features
(standardised, L2-regularised ``C = c``); the fitted :class:`QMFCalibrator` is the fusion.
"""

from __future__ import annotations

import numpy as np

from .calibration import QMFCalibrator, fit_qmf


def fit_fusion(scores: np.ndarray, labels: np.ndarray, names: list[str], c: float = 1.0,
               seed: int = 0) -> QMFCalibrator:
    """Scores ``(N, S)`` of S systems on N validation trials, labels ``(N,)`` 0/1 → the fusion (LLR out)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(names):
        raise ValueError(f"scores of shape {scores.shape} for {len(names)} systems")
    if len(set(names)) != len(names):
        raise ValueError(f"system names must differ: {names}")
    if not np.isfinite(scores).all():
        raise ValueError("non-finite scores cannot be fused")
    return fit_qmf(scores, labels, c=c, seed=seed, names=list(names))


def align(keys: list[tuple[str, str]], other: list[tuple[str, str]], other_scores: np.ndarray,
          where: str = "") -> np.ndarray:
    """``other_scores`` reordered to the trials ``keys`` ``(enrol, test)``; a trial scored in either order
    counts; a trial of ``keys`` missing from ``other`` is an error."""
    pos = {}
    for i, (a, b) in enumerate(other):
        pos.setdefault((a, b), i)
        pos.setdefault((b, a), i)
    missing = [k for k in keys if k not in pos]
    if missing:
        raise ValueError(f"{where}: {len(missing)} of {len(keys)} trials were not scored "
                         f"(e.g. {missing[0][0]} / {missing[0][1]}): fuse systems scored on the same trial list")
    return np.asarray(other_scores)[[pos[k] for k in keys]]


__all__ = ["align", "fit_fusion"]
