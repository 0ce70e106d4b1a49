"""Quality-measure-function (QMF) calibration: scores + quality measures → log-likelihood ratios.

Logistic-regression calibration with quality measures as in LAP ("Rethinking…", phase 6,
seeds-spec §4.6) after Thienpondt et al., "The IDLAB VoxSRC-20 submission", 2020.

Features per trial (``FEATURES``):

* the (normalised) score of the previous stage;
* ``log`` duration of each side, in seconds.  This is the **utterance (file) duration**,
  not a speech duration: no voice-activity detection is run;
* the raw (pre-normalisation) L2 norm of each side's embedding;
* the standard deviation of each side's raw embedding (``norm · std(unit embedding)``).

Each quality measure enters as ``(min, max)`` over the two sides, so the LLR of ``(a, b)``
equals that of ``(b, a)``.  Differences from the seed, deliberately: features are
standardised (the seed fed raw features to liblinear), the calibrator is fitted on the
*validation trials* (not on synthetic cohort trials), and the output is an LLR — the
logistic-regression log-odds minus the training prior log-odds — not a posterior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURES = ["score", "log_dur_min", "log_dur_max", "norm_min", "norm_max", "std_min", "std_max"]


@dataclass
class SideQuality:
    """Quality measures of utterances, one row each: duration (s), raw norm, raw std."""

    duration: np.ndarray  # (N,) seconds
    norm: np.ndarray  # (N,) L2 norm of the raw embedding
    std: np.ndarray  # (N,) std of the raw embedding


def side_quality(matrix: np.ndarray, raw_norms: np.ndarray | None, durations: np.ndarray) -> SideQuality:
    """From unit embeddings ``(N, E)``, their raw norms ``(N,)`` and durations ``(N,)`` seconds."""
    norms = np.ones(matrix.shape[0]) if raw_norms is None else np.asarray(raw_norms, dtype=np.float64)
    std = norms * np.asarray(matrix, dtype=np.float64).std(axis=1)
    return SideQuality(np.asarray(durations, dtype=np.float64), norms, std)


def qmf_features(scores: np.ndarray, qa: SideQuality, qb: SideQuality) -> np.ndarray:
    """Trial features ``(N, 7)`` in the order of ``FEATURES``; ``qa``/``qb`` are per-trial rows."""
    la = np.log(np.maximum(qa.duration, 1e-3))
    lb = np.log(np.maximum(qb.duration, 1e-3))
    cols = [np.asarray(scores, dtype=np.float64)]
    for x, y in ((la, lb), (qa.norm, qb.norm), (qa.std, qb.std)):
        cols += [np.minimum(x, y), np.maximum(x, y)]
    return np.stack(cols, axis=1)


@dataclass
class QMFCalibrator:
    """A fitted calibrator: standardisation + linear log-odds, minus the training prior log-odds."""

    feature_mean: np.ndarray  # (F,)
    feature_scale: np.ndarray  # (F,)
    coef: np.ndarray  # (F,)
    intercept: float
    prior_logodds: float  # log(n_target / n_nontarget) of the training trials
    features: tuple = tuple(FEATURES)

    def llr(self, feats: np.ndarray) -> np.ndarray:
        """Natural-log likelihood ratios ``(N,)`` of feature rows ``(N, F)``."""
        z = (np.asarray(feats, dtype=np.float64) - self.feature_mean) / self.feature_scale
        return z @ self.coef + self.intercept - self.prior_logodds

    def to_dict(self) -> dict:
        return {"method": "qmf-logreg", "features": list(self.features),
                "feature_mean": self.feature_mean.tolist(), "feature_scale": self.feature_scale.tolist(),
                "coef": self.coef.tolist(), "intercept": float(self.intercept),
                "prior_logodds": float(self.prior_logodds)}

    @classmethod
    def from_dict(cls, d: dict) -> "QMFCalibrator":
        if d.get("method") != "qmf-logreg":
            raise ValueError(f"unknown calibrator method {d.get('method')!r} (expected 'qmf-logreg')")
        return cls(np.asarray(d["feature_mean"]), np.asarray(d["feature_scale"]), np.asarray(d["coef"]),
                   float(d["intercept"]), float(d["prior_logodds"]), tuple(d["features"]))


def fit_qmf(feats: np.ndarray, labels: np.ndarray, c: float = 1.0, seed: int = 0) -> QMFCalibrator:
    """Fit on validation trials: features ``(N, F)``, labels ``(N,)`` 0/1 → :class:`QMFCalibrator`.

    scikit-learn ``StandardScaler`` + ``LogisticRegression`` (L2, ``C = c``, lbfgs).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels).astype(int)
    n_tar = int(y.sum())
    if n_tar == 0 or n_tar == len(y):
        raise ValueError("calibration needs both target and non-target validation trials")
    sc = StandardScaler().fit(feats)
    scale = np.where(sc.scale_ > 0, sc.scale_, 1.0)
    lr = LogisticRegression(C=c, random_state=seed, max_iter=1000)
    lr.fit((feats - sc.mean_) / scale, y)
    return QMFCalibrator(sc.mean_.copy(), scale, lr.coef_[0].copy(), float(lr.intercept_[0]),
                         float(np.log(n_tar / (len(y) - n_tar))))


def posterior(llr: np.ndarray | float, p_target: float) -> np.ndarray:
    """P(same speaker | scores) at prior ``p_target``: ``sigmoid(llr + logit(p_target))``."""
    x = np.asarray(llr, dtype=np.float64) + np.log(p_target / (1.0 - p_target))
    return 1.0 / (1.0 + np.exp(-x))
