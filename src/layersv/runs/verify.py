"""``layersv verify``: one pair of files scored with a run's model and stored scoring state."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.dataset_folder import Trials
from ..embed.batches import Embeddings
from ..embed.files import embed_for_scoring
from ..model import load_model
from ..scoring.decision import decide, scoring_state


def verify(run: str | Path, a: str | Path, b: str | Path, p_target: float = 0.01, device: str = "cpu") -> dict:
    """Score one pair with the run's model and stored scoring state (``layersv verify``).

    Returns ``{"score", "stage", "calibrated", "threshold", "threshold_kind", "accept",
    "posterior" (calibrated only), "p_target", "stages", "durations"}``.  A run without a
    calibrator gives its last normalised stage (``cosine``/``mean_sub``/``asnorm``) and decides at
    that stage's validation EER threshold; a run never evaluated (no ``calibration.json``) gives
    the raw cosine with ``accept = None`` (no operating point is known).
    """

    run = Path(run)
    model = load_model(run, device)  # first: refuses a missing or pickled model before anything else
    pipe, stored = scoring_state(run)
    fa, fb = embed_for_scoring(model, a, pipe), embed_for_scoring(model, b, pipe)
    emb = Embeddings(["a", "b"], np.stack([fa.embedding, fb.embedding]), np.array([fa.raw_norm, fb.raw_norm]))
    trials = Trials(np.zeros(1, dtype=np.int64), ["a"], ["b"])
    stages = pipe.score(emb, trials, np.array([fa.duration, fb.duration]))
    stage = pipe.final_stage
    score = float(stages[stage][0])
    out = {"stage": stage, "score": score, "p_target": p_target,
           "stages": {k: float(v[0]) for k, v in stages.items()}, "durations": [fa.duration, fb.duration]}
    out.update(decide(pipe, score, p_target, stored, run))
    return out
