"""Quality-measure-function (QMF) calibration: scores + quality measures → log-likelihood ratios.

Logistic-regression calibration with quality measures as in LAP ("Rethinking…", phase 6,
seeds-spec §4.6) after Thienpondt et al., "The IDLAB VoxSRC-20 submission", 2020.

Two feature sets (``FEATURE_SETS``, ``eval.qmf_features``):

* ``seed9`` (default, the LAP seed's 9 features in its order, ``FEATURES_SEED``): the (normalised)
  score of the previous stage, ``log`` duration of the enrolment and of the test side, the raw
  (pre-normalisation) L1 and L2 norms of the enrolment embedding, the same of the test embedding,
  and the standard deviation of each side's raw embedding (``norm · std(unit embedding)``);
* ``minmax7`` (``FEATURES``): score, then each quality measure (log duration, L2 norm, std) as
  ``(min, max)`` over the two sides, so the LLR of ``(a, b)`` equals that of ``(b, a)``.

The seed's features are ordered (enrolment, test); layersv fits on both orders of every trial and
scores the mean LLR of the two orders, so a verification score never depends on which file is
called the enrolment (``verify(a, b) == verify(b, a)``).  Durations are **utterance (file) durations**, not speech durations: no voice-activity detection
is run (as the seed).  Differences from the seed, deliberately: features are
standardised (the seed fed raw features to liblinear), the calibrator is fitted on the
*validation trials* (not on synthetic cohort trials), and the output is an LLR — the
logistic-regression log-odds minus the training prior log-odds — not a posterior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURES = ["score", "log_dur_min", "log_dur_max", "norm_min", "norm_max", "std_min", "std_max"]
FEATURES_SEED = ["score", "log_dur_e", "log_dur_t", "l1_e", "l2_e", "l1_t", "l2_t", "std_e", "std_t"]
FEATURE_SETS = {"seed9": FEATURES_SEED, "minmax7": FEATURES}
SEED_SWAP = [0, 2, 1, 5, 6, 3, 4, 8, 7]  # seed9 columns of the trial (t, e) from those of (e, t)


@dataclass
class SideQuality:
    """Quality measures of utterances, one row each: duration (s), raw L2 norm, raw std, raw L1 norm."""

    duration: np.ndarray  # (N,) seconds
    norm: np.ndarray  # (N,) L2 norm of the raw embedding
    std: np.ndarray  # (N,) std of the raw embedding
    l1: np.ndarray | None = None  # (N,) L1 norm of the raw embedding

    def rows(self, r: np.ndarray) -> "SideQuality":
        return SideQuality(self.duration[r], self.norm[r], self.std[r], None if self.l1 is None else self.l1[r])


def side_quality(matrix: np.ndarray, raw_norms: np.ndarray | None, durations: np.ndarray) -> SideQuality:
    """From unit embeddings ``(N, E)``, their raw norms ``(N,)`` and durations ``(N,)`` seconds."""
    norms = np.ones(matrix.shape[0]) if raw_norms is None else np.asarray(raw_norms, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    std = norms * m.std(axis=1)
    return SideQuality(np.asarray(durations, dtype=np.float64), norms, std, norms * np.abs(m).sum(axis=1))


def qmf_features(scores: np.ndarray, qa: SideQuality, qb: SideQuality, kind: str = "minmax7") -> np.ndarray:
    """Trial features ``(N, F)`` in the order of ``FEATURE_SETS[kind]``; ``qa``/``qb``: enrolment and
    test rows per trial."""
    if kind not in FEATURE_SETS:
        raise ValueError(f"unknown QMF feature set {kind!r}; valid: {', '.join(FEATURE_SETS)}")
    la = np.log(np.maximum(qa.duration, 1e-3))
    lb = np.log(np.maximum(qb.duration, 1e-3))
    cols = [np.asarray(scores, dtype=np.float64)]
    if kind == "seed9":
        return np.stack(cols + [la, lb, qa.l1, qa.norm, qb.l1, qb.norm, qa.std, qb.std], axis=1)
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
        """Natural-log likelihood ratios ``(N,)`` of feature rows ``(N, F)`` (seed9: the mean of both orders)."""
        f = np.asarray(feats, dtype=np.float64)
        if list(self.features) == FEATURES_SEED:
            return 0.5 * (self._llr(f) + self._llr(f[:, SEED_SWAP]))
        return self._llr(f)

    def _llr(self, f: np.ndarray) -> np.ndarray:
        z = (f - self.feature_mean) / self.feature_scale
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


def fit_qmf(feats: np.ndarray, labels: np.ndarray, c: float = 1.0, seed: int = 0,
            names: list[str] | tuple | None = None) -> QMFCalibrator:
    """Fit on validation trials: features ``(N, F)``, labels ``(N,)`` 0/1 → :class:`QMFCalibrator`.

    scikit-learn ``StandardScaler`` + ``LogisticRegression`` (L2, ``C = c``, lbfgs).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels).astype(int)
    n_tar = int(y.sum())
    if n_tar == 0 or n_tar == len(y):
        raise ValueError("calibration needs both target and non-target validation trials")
    if names is None:  # the feature set with that many columns
        names = next((ns for ns in FEATURE_SETS.values() if len(ns) == feats.shape[1]), None)
        if names is None:
            raise ValueError(f"{feats.shape[1]} feature columns match no QMF feature set; pass names")
    if len(names) != feats.shape[1]:
        raise ValueError(f"{feats.shape[1]} feature columns but {len(names)} names")
    if list(names) == FEATURES_SEED:  # ordered features: learn from both orders of every trial
        feats, y = np.concatenate([feats, np.asarray(feats)[:, SEED_SWAP]]), np.concatenate([y, y])
    sc = StandardScaler().fit(feats)
    scale = np.where(sc.scale_ > 0, sc.scale_, 1.0)
    lr = LogisticRegression(C=c, random_state=seed, max_iter=1000)
    lr.fit((feats - sc.mean_) / scale, y)
    return QMFCalibrator(sc.mean_.copy(), scale, lr.coef_[0].copy(), float(lr.intercept_[0]),
                         float(np.log(n_tar / (len(y) - n_tar))), tuple(names))


def feature_kind(names) -> str:
    """The feature set of a fitted calibrator from its feature names."""
    for kind, ns in FEATURE_SETS.items():
        if list(names) == list(ns):
            return kind
    raise ValueError(f"unknown QMF features {list(names)}")


def posterior(llr: np.ndarray | float, p_target: float) -> np.ndarray:
    """P(same speaker | scores) at prior ``p_target``: ``sigmoid(llr + logit(p_target))``."""
    x = np.asarray(llr, dtype=np.float64) + np.log(p_target / (1.0 - p_target))
    return 1.0 / (1.0 + np.exp(-x))
