"""Tests for layersv.metrics: hand-computed golden values + brute-force cross-checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from layersv import metrics as M

# ---------------------------------------------------------------------------
# Golden example, worked out by hand.
#
# targets     : 0.9, 0.8, 0.4         (n_tar = 3)
# non-targets : 0.5, 0.3, 0.1, 0.05   (n_non = 4)
# rule: accept iff score >= t
#
#   t      | class of t | p_miss = #tar<t / 3 | p_fa = #non>=t / 4
#   -------+------------+---------------------+-------------------
#   0.05   |  N         | 0                   | 4/4 = 1
#   0.1    |  N         | 0                   | 3/4
#   0.3    |  N         | 0                   | 2/4
#   0.4    |  T         | 0                   | 1/4
#   0.5    |  N         | 1/3                 | 1/4
#   0.8    |  T         | 1/3                 | 0
#   0.9    |  T         | 2/3                 | 0
#   +inf   |            | 1                   | 0
#
# EER: first i with p_miss >= p_fa is t=0.5 (1/3 >= 1/4); previous point t=0.4.
#   (m0, fa0) = (0, 1/4), (m1, fa1) = (1/3, 1/4)
#   a   = (1/4 - 0) / ((1/4 - 0) - (1/4 - 1/3)) = (1/4) / (1/3) = 3/4
#   EER = 0 + 3/4 * 1/3 = 1/4  ->  25 %,  EER threshold = 0.5
#
# minDCF, p_target = 0.01, unit costs: c_tar = 0.01, c_non = 0.99,
#   normaliser = 0.01  ->  DCF = p_miss + 99 p_fa
#   t: 0.05->99, 0.1->74.25, 0.3->49.5, 0.4->24.75, 0.5->24.75+1/3,
#      0.8->1/3, 0.9->2/3, inf->1      => minDCF = 1/3 at t = 0.8
# minDCF, p_target = 0.05: DCF = p_miss + 19 p_fa
#   0.4->4.75, 0.8->1/3, ...            => minDCF = 1/3 at t = 0.8
# minDCF, p_target = 0.5: normaliser 0.5 -> DCF = p_miss + p_fa
#   0.05->1, 0.1->0.75, 0.3->0.5, 0.4->0.25, 0.5->7/12, 0.8->1/3,
#   0.9->2/3, inf->1                    => minDCF = 1/4 at t = 0.4
#   (the seeds' un-normalised value would have been 0.125)
# minDCF, p_target = 0.01, c_miss = 10: c_tar = 0.1, c_non = 0.99,
#   normaliser 0.1 -> DCF = p_miss + 9.9 p_fa
#   0.4->2.475, 0.8->1/3, 0.9->2/3      => minDCF = 1/3 at t = 0.8
# ---------------------------------------------------------------------------
GOLD_TAR = [0.9, 0.8, 0.4]
GOLD_NON = [0.5, 0.3, 0.1, 0.05]
GOLD_SCORES = np.array(GOLD_TAR + GOLD_NON)
GOLD_LABELS = np.array([1] * 3 + [0] * 4)


def test_golden_error_rates_table() -> None:
    thr, pm, pfa = M.error_rates(GOLD_SCORES, GOLD_LABELS)
    np.testing.assert_array_equal(thr, [0.05, 0.1, 0.3, 0.4, 0.5, 0.8, 0.9, np.inf])
    np.testing.assert_allclose(pm, [0, 0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(pfa, [1, 0.75, 0.5, 0.25, 0.25, 0, 0, 0], rtol=0, atol=1e-15)


def test_golden_eer() -> None:
    assert M.eer(GOLD_SCORES, GOLD_LABELS) == pytest.approx(25.0, abs=1e-12)
    assert M.eer_threshold(GOLD_SCORES, GOLD_LABELS) == 0.5


def test_golden_min_dcf() -> None:
    assert M.min_dcf(GOLD_SCORES, GOLD_LABELS, 0.01) == pytest.approx(1 / 3, abs=1e-12)
    assert M.min_dcf(GOLD_SCORES, GOLD_LABELS, 0.05) == pytest.approx(1 / 3, abs=1e-12)
    val, thr = M.min_dcf_threshold(GOLD_SCORES, GOLD_LABELS, 0.01)
    assert val == pytest.approx(1 / 3, abs=1e-12) and thr == 0.8
    val, thr = M.min_dcf_threshold(GOLD_SCORES, GOLD_LABELS, 0.5)
    assert val == pytest.approx(0.25, abs=1e-12) and thr == 0.4
    assert M.min_dcf(GOLD_SCORES, GOLD_LABELS, 0.01, c_miss=10.0) == pytest.approx(
        1 / 3, abs=1e-12
    )


def test_golden_order_and_input_types() -> None:
    """Shuffling trials, lists, bool labels, float labels: same answers."""
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(GOLD_SCORES))
    s, lab = GOLD_SCORES[perm], GOLD_LABELS[perm]
    for labels in (lab, lab.astype(bool), lab.astype(float), lab.tolist()):
        assert M.eer(s.tolist(), labels) == pytest.approx(25.0, abs=1e-12)
        assert M.min_dcf(s, labels, 0.01) == pytest.approx(1 / 3, abs=1e-12)


def test_golden_ties() -> None:
    # targets 1, 1, 0 ; non-targets 1, 0, 0
    #   t=0:   p_miss 0,   p_fa 1
    #   t=1:   p_miss 1/3, p_fa 1/3   <- first p_miss >= p_fa
    #   t=inf: p_miss 1,   p_fa 0
    # a = (1 - 0) / ((1 - 0) - (1/3 - 1/3)) = 1 -> EER = 1/3 = 33.33 %
    # minDCF(0.5) = min(1, 2/3, 1) = 2/3 at t=1
    s = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    lab = [1, 1, 1, 0, 0, 0]
    thr, pm, pfa = M.error_rates(s, lab)
    np.testing.assert_array_equal(thr, [0.0, 1.0, np.inf])
    np.testing.assert_allclose(pm, [0, 1 / 3, 1])
    np.testing.assert_allclose(pfa, [1, 1 / 3, 0])
    assert M.eer(s, lab) == pytest.approx(100 / 3, abs=1e-12)
    assert M.eer_threshold(s, lab) == 1.0
    assert M.min_dcf_threshold(s, lab, 0.5) == pytest.approx((2 / 3, 1.0))


def test_all_scores_equal() -> None:
    # one threshold: (p_miss, p_fa) = (0, 1); then inf: (1, 0)
    # a = 1 / (1 - (-1)) = 1/2 -> EER = 50 %, threshold inf
    s, lab = [0.3] * 5, [1, 0, 1, 0, 0]
    assert M.eer(s, lab) == pytest.approx(50.0)
    assert M.eer_threshold(s, lab) == math.inf
    assert M.min_dcf(s, lab, 0.01) == pytest.approx(1.0)


def test_perfect_separation() -> None:
    rng = np.random.default_rng(1)
    tar = rng.uniform(2, 3, 50)
    non = rng.uniform(-1, 1, 500)
    s = np.concatenate([tar, non])
    lab = np.r_[np.ones(50), np.zeros(500)]
    assert M.eer(s, lab) == 0.0
    assert M.min_dcf(s, lab, 0.01) == 0.0
    assert M.min_dcf(s, lab, 0.05) == 0.0
    assert M.eer_threshold(s, lab) == tar.min()


def test_fully_inverted() -> None:
    s = np.r_[np.linspace(-3, -2, 20), np.linspace(0, 1, 30)]
    lab = np.r_[np.ones(20), np.zeros(30)]
    assert M.eer(s, lab) == pytest.approx(100.0)
    # best achievable is a trivial system -> normalised minDCF = 1
    assert M.min_dcf(s, lab, 0.01) == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# Independent brute-force reference (explicit Python loops, counting).
# ---------------------------------------------------------------------------
def brute_force(
    scores: list[float], labels: list[int], p_target: float
) -> tuple[list[float], list[float], list[float], float, float, float]:
    tar = [x for x, y in zip(scores, labels) if y == 1]
    non = [x for x, y in zip(scores, labels) if y == 0]
    cands = sorted(set(scores)) + [math.inf]
    pm, pfa = [], []
    for t in cands:
        pm.append(sum(1 for x in tar if x < t) / len(tar))
        pfa.append(sum(1 for x in non if x >= t) / len(non))
    # EER by the documented interpolation rule
    eer = None
    for i in range(len(cands)):
        if pm[i] >= pfa[i]:
            if i == 0:
                eer = (pm[0] + pfa[0]) / 2
            else:
                m0, f0, m1, f1 = pm[i - 1], pfa[i - 1], pm[i], pfa[i]
                a = (f0 - m0) / ((f0 - m0) - (f1 - m1))
                eer = m0 + a * (m1 - m0)
            break
    assert eer is not None
    # normalised min DCF
    norm = min(p_target, 1 - p_target)
    best = math.inf
    for m, f in zip(pm, pfa):
        best = min(best, (m * p_target + f * (1 - p_target)) / norm)
    return cands, pm, pfa, 100 * eer, best, cands[[m >= f for m, f in zip(pm, pfa)].index(True)]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("n", [2, 7, 50, 400])
@pytest.mark.parametrize("round_to", [None, 1, 0])
def test_against_brute_force(seed: int, n: int, round_to: int | None) -> None:
    rng = np.random.default_rng(seed * 1000 + n)
    lab = (rng.random(n) < 0.3).astype(int)
    lab[0], lab[-1] = 1, 0  # both classes present
    s = rng.normal(0, 1, n) + lab
    if round_to is not None:  # heavy ties
        s = np.round(s, round_to)
    cands, pm, pfa, eer_ref, dcf_ref, thr_ref = brute_force(s.tolist(), lab.tolist(), 0.01)
    thr, pm_f, pfa_f = M.error_rates(s, lab)
    np.testing.assert_array_equal(thr, cands)
    np.testing.assert_allclose(pm_f, pm, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pfa_f, pfa, rtol=0, atol=1e-12)
    assert M.eer(s, lab) == pytest.approx(eer_ref, abs=1e-9)
    assert M.eer_threshold(s, lab) == thr_ref
    assert M.min_dcf(s, lab, 0.01) == pytest.approx(dcf_ref, abs=1e-9)
    dcf05 = brute_force(s.tolist(), lab.tolist(), 0.05)[4]
    assert M.min_dcf(s, lab, 0.05) == pytest.approx(dcf05, abs=1e-9)
    # mostly targets: exercises the other branch of the class-counting code
    lab2 = 1 - lab
    ref2 = brute_force(s.tolist(), lab2.tolist(), 0.05)
    assert M.eer(s, lab2) == pytest.approx(ref2[3], abs=1e-9)
    assert M.min_dcf(s, lab2, 0.05) == pytest.approx(ref2[4], abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_invariance_under_increasing_transform(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lab = (rng.random(300) < 0.2).astype(int)
    lab[:2] = [1, 0]
    s = np.round(rng.normal(0, 1, 300) + 1.5 * lab, 2)  # include ties
    f = lambda x: np.exp(x) + x**3  # noqa: E731  strictly increasing
    for g in (f, lambda x: 7.0 * x - 3.0):
        assert M.eer(g(s), lab) == pytest.approx(M.eer(s, lab), abs=1e-12)
        assert M.min_dcf(g(s), lab, 0.01) == pytest.approx(M.min_dcf(s, lab, 0.01), abs=1e-12)
        assert M.min_dcf(g(s), lab, 0.05) == pytest.approx(M.min_dcf(s, lab, 0.05), abs=1e-12)
        assert M.eer_threshold(g(s), lab) == pytest.approx(g(M.eer_threshold(s, lab)))


# ---------------------------------------------------------------------------
# Calibration metrics
# ---------------------------------------------------------------------------
def test_cllr_golden() -> None:
    # all llr = 0: log2(1 + e^0) = log2(2) = 1 for every trial -> exactly 1 bit
    assert M.cllr(np.zeros(10), [1] * 4 + [0] * 6) == 1.0
    # tar llr = log 3, non llr = -log 3: each term log2(1 + 1/3) = log2(4/3)
    v = M.cllr([math.log(3), -math.log(3)], [1, 0])
    assert v == pytest.approx(math.log2(4 / 3), abs=1e-12)


def test_cllr_well_calibrated_below_one_and_stable() -> None:
    rng = np.random.default_rng(5)
    # Gaussian scores with equal variance are calibrated LLRs when
    # llr = mu * x - mu^2 / 2 (for tar ~ N(mu,1), non ~ N(0,1)).
    mu = 2.0
    tar = rng.normal(mu, 1, 5000)
    non = rng.normal(0, 1, 5000)
    s = mu * np.r_[tar, non] - mu**2 / 2
    lab = np.r_[np.ones(5000), np.zeros(5000)]
    c = M.cllr(s, lab)
    assert 0 < c < 1
    # huge well-separated LLRs: no overflow, ~0 cost
    assert M.cllr([1e4, -1e4], [1, 0]) == pytest.approx(0.0, abs=1e-12)
    # huge wrong LLRs: finite, ~ 1e4 / ln 2 bits
    assert M.cllr([-1e4, 1e4], [1, 0]) == pytest.approx(1e4 / math.log(2), rel=1e-12)


def test_actual_dcf_golden() -> None:
    # p_target 0.01 -> threshold log(99) = 4.595
    #   tar [5, 3, 6]: 3 missed -> p_miss = 1/3
    #   non [-2, 4.6, 0]: 4.6 accepted -> p_fa = 1/3
    #   DCF = p_miss + 99 p_fa = 1/3 + 33 = 100/3
    # p_target 0.5 -> threshold 0 (accept llr >= 0)
    #   p_miss 0; non 4.6 and 0 accepted -> p_fa 2/3; DCF = 2/3
    s = [5, 3, 6, -2, 4.6, 0]
    lab = [1, 1, 1, 0, 0, 0]
    assert M.actual_dcf(s, lab, 0.01) == pytest.approx(100 / 3)
    assert M.actual_dcf(s, lab, 0.5) == pytest.approx(2 / 3)
    assert M.bayes_threshold(0.01) == pytest.approx(-math.log(0.01 / 0.99))


def test_actual_dcf_ge_min_dcf() -> None:
    rng = np.random.default_rng(9)
    lab = (rng.random(2000) < 0.3).astype(int)
    s = rng.normal(0, 1, 2000) + 2 * lab
    for p in (0.01, 0.05, 0.3):
        assert M.actual_dcf(s, lab, p) >= M.min_dcf(s, lab, p) - 1e-12


# ---------------------------------------------------------------------------
# DET / probit / compute_all
# ---------------------------------------------------------------------------
def test_det_curve_and_probit() -> None:
    d = M.det_curve(GOLD_SCORES, GOLD_LABELS)
    assert set(d) == {"p_fa", "p_miss", "thresholds"}
    assert d["p_fa"].shape == d["p_miss"].shape == d["thresholds"].shape == (8,)
    p = M.probit(np.array([0.0, 0.5, 1.0, 0.8413447460685429]))
    assert np.all(np.isfinite(p))
    assert p[1] == 0.0
    assert p[3] == pytest.approx(1.0, abs=1e-9)
    assert p[0] == pytest.approx(-p[2])


def test_compute_all() -> None:
    r = M.compute_all(GOLD_SCORES, GOLD_LABELS)
    assert set(r) == {"eer", "min_dcf_0.01", "min_dcf_0.05", "trials", "targets"}
    assert r["eer"] == pytest.approx(25.0)
    assert r["min_dcf_0.01"] == pytest.approx(1 / 3)
    assert r["trials"] == 7 and r["targets"] == 3
    assert all(type(r[k]) is float for k in ("eer", "min_dcf_0.01", "min_dcf_0.05"))
    assert type(r["trials"]) is int and type(r["targets"]) is int
    rc = M.compute_all(GOLD_SCORES, GOLD_LABELS, calibrated=True)
    assert {"cllr", "act_dcf_0.01", "act_dcf_0.05"} <= set(rc)
    assert all(type(rc[k]) is float for k in ("cllr", "act_dcf_0.01", "act_dcf_0.05"))
    assert rc["cllr"] == pytest.approx(M.cllr(GOLD_SCORES, GOLD_LABELS))


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "scores, labels, match",
    [
        ([0.1, 0.2], [0, 0], "one target"),
        ([0.1, 0.2], [1, 1], "one non-target"),
        ([0.1, 0.2, 0.3], [1, 0], "same length"),
        ([0.1, float("nan"), 0.3], [1, 0, 0], "finite"),
        ([0.1, float("inf"), 0.3], [1, 0, 0], "finite"),
        ([0.1, 0.2, 0.3], [1, 0, 2], "only 0"),
        ([[0.1, 0.2]], [[1, 0]], "1-D"),
        ([], [], "one target"),
    ],
)
def test_bad_input(scores: list, labels: list, match: str) -> None:
    for fn in (M.eer, M.min_dcf, M.error_rates, M.cllr, M.actual_dcf, M.compute_all):
        with pytest.raises(ValueError, match=match):
            fn(scores, labels)


def test_bad_dcf_params() -> None:
    with pytest.raises(ValueError, match="p_target"):
        M.min_dcf(GOLD_SCORES, GOLD_LABELS, p_target=0.0)
    with pytest.raises(ValueError, match="cost"):
        M.min_dcf(GOLD_SCORES, GOLD_LABELS, c_fa=0.0)
