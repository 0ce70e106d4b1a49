"""Speaker-verification metrics: EER, minDCF, actual DCF, Cllr, DET curve.

Conventions
-----------
* ``scores``: shape ``(n,)`` real-valued, higher = more likely "same speaker".
* ``labels``: shape ``(n,)``, ``1``/``True`` = target (same speaker) trial,
  ``0``/``False`` = non-target trial.  Bool, int or float arrays (or lists)
  are accepted as long as every value is 0 or 1.
* Decision rule: **accept** (declare same speaker) iff ``score >= t``.
  Hence ``p_miss(t) = #{target scores < t} / n_tar`` and
  ``p_fa(t) = #{non-target scores >= t} / n_non``.
* The operating points are evaluated at every unique score (ascending) plus
  ``+inf`` (accept nothing).  Tied scores are always grouped, so the result
  does not depend on trial order.
* **EER is returned in percent** (0..100).
* **minDCF / actual DCF are normalised**: the raw detection cost
  ``C_miss * P_miss * P_target + C_fa * P_fa * (1 - P_target)`` is divided by
  the cost of the best trivial system, ``min(C_miss * P_target,
  C_fa * (1 - P_target))``.  Defaults are ``C_miss = C_fa = 1``.
* Cllr is in bits; it assumes the scores are natural-log likelihood ratios.

Deliberate differences from the seed scripts
--------------------------------------------
The seed code reported an *un-normalised* minDCF (missing the division by
``min(C_miss*P_target, C_fa*(1-P_target))``) and clamped scores to ``[0, 1]``
before computing the metrics.  Both were bugs and are *not* reproduced: the
minDCF here is always normalised and the scores are used untouched (any
finite real value is valid; the metrics other than actual DCF / Cllr are
invariant under strictly increasing transforms of the scores).

Complexity
----------
Everything is vectorised: each class is sorted with ``np.sort``, the smaller
class is merged into the larger with ``np.searchsorted`` and the error counts
come from a cumulative sum over the merged order — O(n log n), no Python loop
over thresholds.  10 million trials take a few seconds on a laptop-class CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtri

__all__ = [
    "error_rates",
    "eer",
    "eer_threshold",
    "min_dcf",
    "min_dcf_threshold",
    "actual_dcf",
    "bayes_threshold",
    "cllr",
    "det_curve",
    "probit",
    "compute_all",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------
def _validate(scores: ArrayLike, labels: ArrayLike) -> tuple[FloatArray, BoolArray]:
    """Convert and validate inputs.

    Args:
        scores: shape ``(n,)``, finite real values.
        labels: shape ``(n,)``, values in {0, 1} (bool/int/float).

    Returns:
        ``(scores, is_target)``: float64 array ``(n,)`` (no copy if the input
        already is a float64 ndarray) and bool array ``(n,)``.

    Raises:
        ValueError: on shape mismatch, non-1-D input, non-finite scores,
            labels outside {0, 1}, or a missing class.
    """
    s = np.asarray(scores, dtype=np.float64)
    lab = np.asarray(labels)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {lab.shape}")
    if s.shape[0] != lab.shape[0]:
        raise ValueError(
            f"scores and labels must have the same length, got {s.shape[0]} and {lab.shape[0]}"
        )
    if not np.all(np.isfinite(s)):
        n_bad = int(np.count_nonzero(~np.isfinite(s)))
        raise ValueError(f"scores must be finite; found {n_bad} NaN/inf value(s)")
    if lab.dtype == np.bool_:
        is_tar = lab
    else:
        if lab.dtype.kind not in "iuf":
            raise ValueError(f"labels must be bool or numeric 0/1, got dtype {lab.dtype}")
        is_tar = lab == 1
        if not np.all(is_tar | (lab == 0)):
            raise ValueError("labels must contain only 0 (non-target) and 1 (target)")
    n_tar = int(np.count_nonzero(is_tar))
    if n_tar == 0:
        raise ValueError("need at least one target trial (label 1); found none")
    if n_tar == s.shape[0]:
        raise ValueError("need at least one non-target trial (label 0); found none")
    return s, is_tar


def _check_dcf_params(p_target: float, c_miss: float, c_fa: float) -> None:
    """Raise ValueError unless 0 < p_target < 1 and both costs are > 0."""
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    if c_miss <= 0 or c_fa <= 0:
        raise ValueError(f"costs must be positive, got c_miss={c_miss}, c_fa={c_fa}")


# --------------------------------------------------------------------------
# core curve
# --------------------------------------------------------------------------
def _merge_classes(
    s: FloatArray, is_tar: BoolArray, n_tar: int
) -> tuple[FloatArray, BoolArray]:
    """Sort all scores, remembering which sorted slots hold target scores.

    Each class is sorted on its own and the smaller one is merged into the
    larger one with ``np.searchsorted`` (one binary search per element of
    the smaller class), which is cheaper than an ``argsort`` of everything.

    Args:
        s: shape ``(n,)`` scores.
        is_tar: shape ``(n,)`` target mask.
        n_tar: number of targets.

    Returns:
        ``(merged, tar_sorted)``: ``merged`` has shape ``(n + 1,)`` with the
        ascending scores in ``[:n]`` and ``+inf`` in the last slot;
        ``tar_sorted`` (``(n,)`` bool) marks target scores in ``merged[:n]``.
        Among equal scores the order of classes is arbitrary (callers group
        ties).
    """
    n = s.shape[0]
    small_is_tar = n_tar <= n - n_tar
    small = s[is_tar] if small_is_tar else s[~is_tar]  # fresh copies ...
    big = s[~is_tar] if small_is_tar else s[is_tar]
    small.sort()  # ... so sort them in place
    big.sort()
    pos = np.searchsorted(big, small, side="left")  # (n_small,)
    pos += np.arange(small.shape[0])  # slots of the small class in the merge
    in_small = np.zeros(n, dtype=bool)
    in_small[pos] = True
    merged = np.empty(n + 1, dtype=np.float64)
    merged[n] = np.inf
    merged[pos] = small
    body = merged[:n]
    body[~in_small] = big
    if not small_is_tar:
        np.logical_not(in_small, out=in_small)
    return merged, in_small


def _error_rates(s: FloatArray, is_tar: BoolArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Fast operating points on already validated inputs (see :func:`error_rates`)."""
    n = s.shape[0]
    n_tar = int(np.count_nonzero(is_tar))
    n_non = n - n_tar
    merged, tar_sorted = _merge_classes(s, is_tar, n_tar)
    body = merged[:n]

    # tar_cum[j] = number of targets among the j smallest scores, shape (n+1,)
    tar_cum = np.empty(n + 1, dtype=np.int64)
    tar_cum[0] = 0
    np.cumsum(tar_sorted, out=tar_cum[1:])
    del tar_sorted

    # first index of every group of equal scores
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    np.not_equal(body[1:], body[:-1], out=new_group[1:])
    if new_group.all():  # no ties (common for continuous scores): no gathers
        thresholds = merged  # (n+1,), already ends with +inf
        below = np.arange(n + 1)  # number of scores < thresholds[k]
        tar_below = tar_cum
    else:
        starts = np.flatnonzero(new_group)  # (m,)
        starts = np.append(starts, n)  # the +inf point: everything is below
        thresholds = merged[starts]  # (m+1,), merged[n] = +inf
        below = starts
        tar_below = tar_cum[starts]
    del new_group

    p_miss = tar_below / n_tar  # (m+1,), ends with 1
    non_above = np.subtract(below, tar_below)  # non-targets below threshold ...
    np.subtract(n_non, non_above, out=non_above)  # ... -> at or above it
    p_fa = non_above / n_non  # (m+1,), ends with 0
    return thresholds, p_miss, p_fa


def error_rates(
    scores: ArrayLike, labels: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Miss and false-alarm rates at every distinct threshold.

    Decision rule: accept iff ``score >= t``.

    Args:
        scores: shape ``(n,)`` finite scores.
        labels: shape ``(n,)`` 1/True = target, 0/False = non-target.

    Returns:
        ``(thresholds, p_miss, p_fa)``, each float64 of shape ``(m + 1,)`` where
        ``m`` is the number of unique scores.  ``thresholds`` holds the sorted
        unique scores followed by ``+inf``.  ``p_miss`` is non-decreasing from
        0 (at the minimum score) to 1 (at ``+inf``); ``p_fa`` is non-increasing
        from 1 to 0.

    Raises:
        ValueError: on invalid input (see module docstring).
    """
    s, is_tar = _validate(scores, labels)
    return _error_rates(s, is_tar)


# --------------------------------------------------------------------------
# EER
# --------------------------------------------------------------------------
def _eer_point(p_miss: FloatArray, p_fa: FloatArray) -> tuple[float, int]:
    """EER (as a fraction, 0..1) and index ``i`` of the crossing point."""
    # p_miss - p_fa is non-decreasing and equals +1 at the last point,
    # so the first index with p_miss >= p_fa always exists.
    i = int(np.argmax(p_miss >= p_fa))
    if i == 0:
        return 0.5 * (float(p_miss[0]) + float(p_fa[0])), 0
    m0, fa0 = float(p_miss[i - 1]), float(p_fa[i - 1])
    m1, fa1 = float(p_miss[i]), float(p_fa[i])
    a = (fa0 - m0) / ((fa0 - m0) - (fa1 - m1))  # denominator > 0 here
    return m0 + a * (m1 - m0), i


def eer(scores: ArrayLike, labels: ArrayLike) -> float:
    """Equal error rate, **in percent**.

    Definition: walk the operating points of :func:`error_rates` in order of
    increasing threshold (``p_fa`` decreasing, ``p_miss`` increasing) and take
    the first index ``i`` with ``p_miss[i] >= p_fa[i]``.  The segment between
    points ``i-1`` and ``i`` is linearly interpolated to where
    ``p_miss == p_fa``::

        a   = (fa0 - m0) / ((fa0 - m0) - (fa1 - m1))
        EER = m0 + a * (m1 - m0)

    with ``(m0, fa0)`` the point ``i-1`` and ``(m1, fa1)`` the point ``i``.
    If ``i == 0`` (cannot happen with valid input, as the first point is
    ``p_miss=0, p_fa=1``) the EER is ``(p_miss[0] + p_fa[0]) / 2``.

    Args:
        scores: shape ``(n,)``.
        labels: shape ``(n,)``.

    Returns:
        EER in percent, in ``[0, 100]``.
    """
    _, pm, pfa = error_rates(scores, labels)
    return 100.0 * _eer_point(pm, pfa)[0]


def eer_threshold(scores: ArrayLike, labels: ArrayLike) -> float:
    """Threshold at the EER point.

    Returns ``thresholds[i]`` where ``i`` is the crossing index defined in
    :func:`eer`, i.e. the smallest threshold (among unique scores and
    ``+inf``) at which ``p_miss >= p_fa``.  It can be ``+inf`` in degenerate
    cases (e.g. every score equal).

    Args:
        scores: shape ``(n,)``.
        labels: shape ``(n,)``.
    """
    thr, pm, pfa = error_rates(scores, labels)
    return float(thr[_eer_point(pm, pfa)[1]])


# --------------------------------------------------------------------------
# DCF
# --------------------------------------------------------------------------
def _norm_dcf_curve(
    p_miss: FloatArray, p_fa: FloatArray, p_target: float, c_miss: float, c_fa: float
) -> FloatArray:
    """Normalised DCF at every operating point, shape like ``p_miss``."""
    c_tar = c_miss * p_target
    c_non = c_fa * (1.0 - p_target)
    c_def = min(c_tar, c_non)
    return (c_tar / c_def) * p_miss + (c_non / c_def) * p_fa


def _min_dcf_from_curve(
    thr: FloatArray,
    p_miss: FloatArray,
    p_fa: FloatArray,
    p_target: float,
    c_miss: float,
    c_fa: float,
) -> tuple[float, float]:
    _check_dcf_params(p_target, c_miss, c_fa)
    dcf = _norm_dcf_curve(p_miss, p_fa, p_target, c_miss, c_fa)
    k = int(np.argmin(dcf))  # first (lowest-threshold) minimiser
    return float(dcf[k]), float(thr[k])


def min_dcf_threshold(
    scores: ArrayLike,
    labels: ArrayLike,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> tuple[float, float]:
    """Normalised minimum DCF and the threshold achieving it.

    ``DCF_norm(t) = (c_miss*p_miss(t)*p_target + c_fa*p_fa(t)*(1-p_target))
    / min(c_miss*p_target, c_fa*(1-p_target))``, minimised over the thresholds
    of :func:`error_rates` (including ``+inf``, so the value is <= 1).

    Args:
        scores: shape ``(n,)``.
        labels: shape ``(n,)``.
        p_target: prior probability of a target trial, in (0, 1).
        c_miss: cost of a miss (> 0).
        c_fa: cost of a false alarm (> 0).

    Returns:
        ``(min_dcf, threshold)``; on ties the smallest threshold is returned.
    """
    thr, pm, pfa = error_rates(scores, labels)
    return _min_dcf_from_curve(thr, pm, pfa, p_target, c_miss, c_fa)


def min_dcf(
    scores: ArrayLike,
    labels: ArrayLike,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> float:
    """Normalised minimum detection cost (see :func:`min_dcf_threshold`)."""
    return min_dcf_threshold(scores, labels, p_target, c_miss, c_fa)[0]


def bayes_threshold(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Bayes decision threshold on natural-log LLRs.

    ``log(c_fa*(1-p_target) / (c_miss*p_target))``; with unit costs this is
    ``-log(p_target / (1 - p_target))``.
    """
    _check_dcf_params(p_target, c_miss, c_fa)
    return float(np.log(c_fa * (1.0 - p_target)) - np.log(c_miss * p_target))


def _actual_dcf(
    s: FloatArray, is_tar: BoolArray, p_target: float, c_miss: float, c_fa: float
) -> float:
    t = bayes_threshold(p_target, c_miss, c_fa)
    n_tar = int(np.count_nonzero(is_tar))
    n_non = s.shape[0] - n_tar
    accept = s >= t
    n_acc_tar = int(np.count_nonzero(accept & is_tar))
    n_acc = int(np.count_nonzero(accept))
    p_miss = np.array([(n_tar - n_acc_tar) / n_tar])
    p_fa = np.array([(n_acc - n_acc_tar) / n_non])
    return float(_norm_dcf_curve(p_miss, p_fa, p_target, c_miss, c_fa)[0])


def actual_dcf(
    llr_scores: ArrayLike,
    labels: ArrayLike,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> float:
    """Normalised DCF of calibrated scores at the Bayes threshold.

    Scores are interpreted as natural-log likelihood ratios; trials with
    ``llr >= bayes_threshold(p_target, c_miss, c_fa)`` are accepted (with unit
    costs the threshold is ``-log(p_target / (1 - p_target))``).

    Args:
        llr_scores: shape ``(n,)`` natural-log LLRs.
        labels: shape ``(n,)``.
        p_target, c_miss, c_fa: as in :func:`min_dcf`.

    Returns:
        Normalised actual DCF (>= the corresponding minDCF; may exceed 1).
    """
    s, is_tar = _validate(llr_scores, labels)
    return _actual_dcf(s, is_tar, p_target, c_miss, c_fa)


# --------------------------------------------------------------------------
# Cllr
# --------------------------------------------------------------------------
def _cllr(s: FloatArray, is_tar: BoolArray) -> float:
    c_tar = np.mean(np.logaddexp(0.0, -s[is_tar]))
    c_non = np.mean(np.logaddexp(0.0, s[~is_tar]))
    return float(0.5 * (c_tar + c_non) / np.log(2.0))


def cllr(llr_scores: ArrayLike, labels: ArrayLike) -> float:
    """Log-likelihood-ratio cost in bits.

    ``0.5 * (mean(log2(1 + exp(-s_tar))) + mean(log2(1 + exp(s_non))))``,
    computed stably with ``np.logaddexp``.  All-zero LLRs give exactly 1 bit;
    a useful, well-calibrated system gives < 1.

    Args:
        llr_scores: shape ``(n,)`` natural-log LLRs.
        labels: shape ``(n,)``.
    """
    s, is_tar = _validate(llr_scores, labels)
    return _cllr(s, is_tar)


# --------------------------------------------------------------------------
# DET
# --------------------------------------------------------------------------
def probit(p: ArrayLike) -> FloatArray:
    """Inverse standard-normal CDF with ``p`` clipped to ``[1e-6, 1 - 1e-6]``.

    Args:
        p: probabilities, any shape.

    Returns:
        float64 array of the same shape (finite everywhere).
    """
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1.0 - 1e-6)
    return ndtri(q)


def det_curve(scores: ArrayLike, labels: ArrayLike) -> dict[str, FloatArray]:
    """DET curve points.

    Returns:
        ``{"p_fa": (m+1,), "p_miss": (m+1,), "thresholds": (m+1,)}`` — the
        operating points of :func:`error_rates`.  Plot
        ``probit(p_fa)`` vs ``probit(p_miss)`` for the usual DET axes.
    """
    thr, pm, pfa = error_rates(scores, labels)
    return {"p_fa": pfa, "p_miss": pm, "thresholds": thr}


# --------------------------------------------------------------------------
# all at once
# --------------------------------------------------------------------------
def compute_all(scores: ArrayLike, labels: ArrayLike, calibrated: bool = False) -> dict[str, Any]:
    """All standard metrics with a single sort.

    Args:
        scores: shape ``(n,)``.
        labels: shape ``(n,)``.
        calibrated: if True, the scores are treated as natural-log LLRs and
            ``cllr``, ``act_dcf_0.01`` and ``act_dcf_0.05`` are added.

    Returns:
        dict with ``eer`` (percent), ``min_dcf_0.01``, ``min_dcf_0.05``
        (normalised, unit costs), ``trials`` and ``targets`` (ints), plus the
        calibrated keys when requested.  All values are Python floats/ints.
    """
    s, is_tar = _validate(scores, labels)
    thr, pm, pfa = _error_rates(s, is_tar)
    out: dict[str, Any] = {
        "eer": 100.0 * _eer_point(pm, pfa)[0],
        "min_dcf_0.01": _min_dcf_from_curve(thr, pm, pfa, 0.01, 1.0, 1.0)[0],
        "min_dcf_0.05": _min_dcf_from_curve(thr, pm, pfa, 0.05, 1.0, 1.0)[0],
    }
    if calibrated:
        out["cllr"] = _cllr(s, is_tar)
        out["act_dcf_0.01"] = _actual_dcf(s, is_tar, 0.01, 1.0, 1.0)
        out["act_dcf_0.05"] = _actual_dcf(s, is_tar, 0.05, 1.0, 1.0)
    out["trials"] = int(s.shape[0])
    out["targets"] = int(np.count_nonzero(is_tar))
    return out
