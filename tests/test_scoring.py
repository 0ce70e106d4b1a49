"""Scoring stages: mean subtraction, AS-norm (hand-computed toy cohort), QMF calibration, reports."""

import json

import numpy as np
import pytest

from layersv import metrics
from layersv.data.dataset_folder import Trials
from layersv.embed.batches import Embeddings
from layersv.report import write_report
from layersv.scoring import cosine_scores
from layersv.scoring.asnorm import asnorm_scores, cohort_stats, normalize_rows, prepare_cohort, speaker_means
from layersv.scoring.calibration import fit_qmf, posterior, qmf_features, side_quality
from layersv.scoring.pipeline import ScoringPipeline


def _emb(rows, norms=None):
    return Embeddings([f"u{i}" for i in range(len(rows))], np.asarray(rows, dtype=np.float32), norms)


def test_mean_subtraction_by_hand():
    emb = _emb([[0.6, 0.8], [0.6, -0.8]])
    t = Trials(np.array([0]), ["u0"], ["u1"])
    assert cosine_scores(emb, t)[0] == pytest.approx(0.36 - 0.64, abs=1e-6)
    # a − m = (0, 0.8) → (0, 1); b − m = (0, −0.8) → (0, −1): opposite directions
    assert cosine_scores(emb, t, mean=np.array([0.6, 0.0]))[0] == pytest.approx(-1.0, abs=1e-6)


def test_asnorm_toy_cohort_by_hand():
    emb = _emb([[1.0, 0.0], [0.0, 1.0]])
    cohort = np.array([[1, 0], [0, 1], [-1, 0], [0.6, 0.8]], dtype=np.float32)
    t = Trials(np.array([0]), ["u0"], ["u1"])
    s = cosine_scores(emb, t)
    assert s[0] == pytest.approx(0.0, abs=1e-7)
    # enroll cosines 1, 0, −1, 0.6 → top-2 {1, 0.6}: μ 0.8, σ (ddof 1) √0.08
    # test   cosines 0, 1, 0, 0.8  → top-2 {1, 0.8}: μ 0.9, σ √0.02
    want = 0.5 * ((0 - 0.8) / np.sqrt(0.08) + (0 - 0.9) / np.sqrt(0.02))
    got = asnorm_scores(emb, t, s, cohort, top_k=2)
    assert got[0] == pytest.approx(want, rel=1e-5)
    mu, sd = cohort_stats(emb.matrix, cohort, top_k=2)
    np.testing.assert_allclose(mu, [0.8, 0.9], rtol=1e-6)
    np.testing.assert_allclose(sd, [np.sqrt(0.08), np.sqrt(0.02)], rtol=1e-5)


def test_asnorm_chunking_and_per_utterance_stats_match_a_per_trial_loop():
    rng = np.random.default_rng(0)
    emb = _emb(normalize_rows(rng.standard_normal((30, 8))))
    cohort = normalize_rows(rng.standard_normal((50, 8)))
    a, b = rng.integers(0, 30, 200), rng.integers(0, 30, 200)
    t = Trials(rng.integers(0, 2, 200), [f"u{i}" for i in a], [f"u{i}" for i in b])
    s = cosine_scores(emb, t)
    fast = asnorm_scores(emb, t, s, cohort, top_k=7, chunk=4)
    slow = []
    for i, j, sc in zip(a, b, s):
        ce = np.sort(cohort @ emb.matrix[i])[-7:]
        ct = np.sort(cohort @ emb.matrix[j])[-7:]
        slow.append(0.5 * ((sc - ce.mean()) / ce.std(ddof=1) + (sc - ct.mean()) / ct.std(ddof=1)))
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-5)


def test_speaker_means_and_cohort_subset():
    m = np.array([[1, 0], [0.8, 0.6], [0, 1], [0, 1]], dtype=np.float32)
    c, names = speaker_means(m, ["a", "a", "b", "b"])
    assert names == ["a", "b"]
    np.testing.assert_allclose(c[0], np.array([1.8, 0.6]) / np.hypot(1.8, 0.6), rtol=1e-6)
    np.testing.assert_allclose(c[1], [0, 1], atol=1e-7)
    assert prepare_cohort(m, ["a", "a", "b", "c"], mean=None, max_speakers=2).shape == (2, 2)


def _synthetic_trials(n, rng):
    """Scores whose separation grows with duration; raw scores are badly calibrated as LLRs."""
    lab = rng.integers(0, 2, n)
    dur = rng.uniform(1.0, 20.0, (n, 2))
    quality = np.log(dur.min(1))
    s = np.where(lab == 1, 0.3 + 0.15 * quality, 0.05) + rng.normal(0, 0.12, n)
    return lab, s, dur


def _features(s, dur, rng):
    n = len(s)
    mk = lambda d: side_quality(normalize_rows(rng.standard_normal((n, 16))), rng.uniform(5, 10, n), d)  # noqa: E731
    return qmf_features(s, mk(dur[:, 0]), mk(dur[:, 1]))


def test_qmf_calibration_lowers_cllr_and_keeps_eer():
    rng = np.random.default_rng(1)
    lab_v, s_v, d_v = _synthetic_trials(4000, rng)
    lab_t, s_t, d_t = _synthetic_trials(4000, rng)
    cal = fit_qmf(_features(s_v, d_v, rng), lab_v)
    llr = cal.llr(_features(s_t, d_t, rng))
    raw = metrics.compute_all(s_t, lab_t, calibrated=True)
    got = metrics.compute_all(llr, lab_t, calibrated=True)
    assert got["cllr"] < 0.8 * raw["cllr"] and got["cllr"] < 1.0
    assert got["eer"] <= raw["eer"] + 1.0  # duration-aware: usually better, never much worse
    assert got["act_dcf_0.05"] < raw["act_dcf_0.05"]
    # LLR, not posterior: the prior of the training trials is removed
    assert cal.prior_logodds == pytest.approx(np.log(lab_v.sum() / (len(lab_v) - lab_v.sum())))
    assert posterior(0.0, 0.5) == pytest.approx(0.5)
    # stored and restored exactly
    again = type(cal).from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_allclose(again.llr(_features(s_t, d_t, np.random.default_rng(3))),
                               cal.llr(_features(s_t, d_t, np.random.default_rng(3))))


def test_qmf_features_are_symmetric_in_the_two_sides():
    rng = np.random.default_rng(2)
    qa = side_quality(normalize_rows(rng.standard_normal((5, 4))), rng.uniform(1, 2, 5), rng.uniform(1, 9, 5))
    qb = side_quality(normalize_rows(rng.standard_normal((5, 4))), rng.uniform(1, 2, 5), rng.uniform(1, 9, 5))
    s = rng.standard_normal(5)
    np.testing.assert_array_equal(qmf_features(s, qa, qb), qmf_features(s, qb, qa))


def test_pipeline_round_trip_and_report_files(tmp_path):
    rng = np.random.default_rng(4)
    n_utt = 40
    emb = _emb(normalize_rows(rng.standard_normal((n_utt, 8))), rng.uniform(3, 6, n_utt))
    a, b = rng.integers(0, n_utt, 300), rng.integers(0, n_utt, 300)
    t = Trials(rng.integers(0, 2, 300), [f"u{i}" for i in a], [f"u{i}" for i in b])
    durs = rng.uniform(1, 10, n_utt)
    pipe = ScoringPipeline(mean=emb.matrix.mean(0), cohort=normalize_rows(rng.standard_normal((20, 8))), top_k=5)
    base = pipe.uncalibrated(emb, t)
    pipe.calibrator = fit_qmf(pipe.features(emb, t, base["asnorm"], durs), t.labels)
    pipe.thresholds = {"eer_valid": {"qmf": 0.1}, "bayes_llr": {"0.01": metrics.bayes_threshold(0.01)}}
    stages = pipe.score(emb, t, durs)
    assert list(stages) == ["cosine", "mean_sub", "asnorm", "qmf"] and pipe.final_stage == "qmf"
    pipe.save(tmp_path)
    back = ScoringPipeline.load(tmp_path)
    for st, s in back.score(emb, t, durs).items():
        np.testing.assert_allclose(s, stages[st], rtol=1e-6)
    assert json.loads((tmp_path / "calibration.json").read_text())["thresholds"]["eer_valid"]["qmf"] == 0.1

    from layersv.report import stage_metrics

    rep = {"dataset": "toy", "trials": len(t), "targets": int(t.labels.sum()),
           "stages": stage_metrics(stages, t.labels),
           "operating_points": {"final_stage": "qmf", "fitted_on": "toy valid", **pipe.thresholds}}
    write_report(tmp_path, rep, stages, t.labels, title="toy")
    for f in ("report.json", "report.md", "det.png", "score_hist.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    back_rep = json.loads((tmp_path / "report.json").read_text())
    assert "cllr" in back_rep["stages"]["qmf"] and "cllr" not in back_rep["stages"]["asnorm"]
    md = (tmp_path / "report.md").read_text()
    assert "| qmf |" in md and "Bayes threshold" in md and "score_hist.png" in md
