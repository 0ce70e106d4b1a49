"""Shared fixtures: a small synthetic dataset folder (generated once per session) and tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A 12-speaker synthetic dataset folder (6 train / 3 valid / 3 test speakers, 4 utterances each)."""
    from layersv.synthetic import generate_corpus

    out = tmp_path_factory.mktemp("tiny_data")
    return generate_corpus(out / "data", num_speakers=12, utts_per_speaker=4, split=(6, 3, 3), seed=1,
                           progress=False, min_sec=1.0, max_sec=2.0)


def tiny_config(data_dir: Path, **overrides):
    """A fast config on the tiny synthetic dataset (a few steps)."""
    from layersv.runs.assemble import assemble_config

    ov = {"nb_total_step": "4", "nb_steps_eval": "2", "batch_size": "4", "train_max_sec": "1.0",
          "embedding_dim": "32", "hidden_dim": "32"}
    ov.update({k: str(v) for k, v in overrides.items()})
    return assemble_config(str(data_dir), "SUPERB", "quickstart", ov)


@pytest.fixture(scope="session")
def fbank_stats_run(tiny_data, tmp_path_factory) -> Path:
    """A calibrated run fitted in seconds on ``tiny_data``: fbank statistics + PCA whitening (Stats), QMF stage."""
    from layersv.runs.assemble import assemble_config
    from layersv.runs import fit as fit_stats

    ov = {"frontend": "fbank", "layers": "0", "score_calibrate": "true"}
    cfg = assemble_config(str(tiny_data), "Stats", None, ov)
    return fit_stats(cfg, tmp_path_factory.mktemp("fbank_stats") / "run", progress=False)


@pytest.fixture
def one_thread():
    """Tiny tensors: one intra-op thread is much faster than two on a shared, loaded machine.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
