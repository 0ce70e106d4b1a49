"""Two-covariance PLDA: the closed-form LLR against direct Gaussian densities; fitting; the eval stage."""

import json

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from layersv.scoring.plda import PLDA


def test_llr_equals_the_ratio_of_gaussian_densities():
    rng = np.random.default_rng(0)
    d = 3
    m = rng.standard_normal((d, d))
    b = m @ m.T + 0.5 * np.eye(d)  # between-speaker covariance
    m = rng.standard_normal((d, d))
    w = 0.3 * (m @ m.T) + 0.2 * np.eye(d)  # within-speaker covariance
    plda = PLDA.from_covariances(np.zeros(d), np.eye(d), b, w)
    t = b + w
    same = multivariate_normal(np.zeros(2 * d), np.block([[t, b], [b, t]]))
    diff = multivariate_normal(np.zeros(2 * d), np.block([[t, np.zeros((d, d))], [np.zeros((d, d)), t]]))
    x1, x2 = rng.standard_normal((5, d)), rng.standard_normal((5, d))
    expect = same.logpdf(np.hstack([x1, x2])) - diff.logpdf(np.hstack([x1, x2]))
    np.testing.assert_allclose(plda.score_pairs(x1, x2), expect, rtol=1e-8, atol=1e-8)


def test_fit_separates_speakers_and_needs_several_recordings():
    rng = np.random.default_rng(1)
    spk = rng.standard_normal((40, 8)) * 2.0
    labels = np.repeat(np.arange(40), 6)
    x = spk[labels] + rng.standard_normal((240, 8))
    plda = PLDA.fit(x, labels, dim=6)
    assert plda.proj.shape == (8, 6)
    new = rng.standard_normal((2, 8)) * 2.0  # unseen speakers
    a = plda.transform(new[[0, 0, 1]] + rng.standard_normal((3, 8)))
    b = plda.transform(new[[0, 1, 0]] + rng.standard_normal((3, 8)))
    llr = plda.score_pairs(a, b)
    assert llr[0] > 0 > max(llr[1], llr[2])
    with pytest.raises(ValueError, match="two or more recordings"):
        PLDA.fit(x[:40], np.arange(40))


def test_plda_stage_in_eval_and_verify(tiny_data, tmp_path, capsys):
    from layersv.cli import main
    from layersv.runs import fit

    from conftest import tiny_config

    run = fit(tiny_config(tiny_data, nb_total_step=2, score_calibrate=False), tmp_path / "run", progress=False)
    assert main(["eval", str(run), "--score_plda", "--no-progress"]) == 0  # PLDA is then the final stage
    rep = json.loads((run / "report.json").read_text())
    assert "plda" in rep["stages"] and rep["operating_points"]["final_stage"] == "plda"
    assert "plda" in capsys.readouterr().out
    wavs = sorted((tiny_data / "wav").glob("*/*.wav"))
    assert main(["verify", str(run), str(wavs[0]), str(wavs[1])]) == 0
