"""The scoring back-end of a run: cosine → mean subtraction → AS-norm (→ PLDA) → QMF calibration.

One object holds everything fitted after training (the training mean, the AS-norm cohort,
the QMF calibrator, the decision thresholds) so that ``layersv eval`` and ``layersv verify``
score identically.  Stored in the run folder:

* ``scoring.npz``: ``mean (E,)`` and ``cohort (K, E)`` (cohort speakers in the mean-subtracted
  space; empty when AS-norm was not used), and the PLDA matrices when PLDA was fitted;
* ``calibration.json``: the calibrator, the final stage, AS-norm top-k, the extraction settings,
  and the decision thresholds (EER threshold of each stage on validation trials; Bayes
  thresholds of the calibrated LLR at ``p_target`` 0.01 / 0.05).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.dataset_folder import Trials
from ..embed.batches import Embeddings
from ..utils import atomic_write_bytes, atomic_write_text
from .asnorm import asnorm_scores
from .calibration import QMFCalibrator, feature_kind, qmf_features, side_quality
from .cosine import cosine_scores
from .plda import PLDA, plda_scores

STATE_FILE = "scoring.npz"
CALIBRATION_FILE = "calibration.json"


@dataclass
class ScoringPipeline:
    """Fitted scoring state.  ``mean (E,)``, ``cohort (K, E)`` or ``None`` when unused."""

    mean: np.ndarray | None = None
    cohort: np.ndarray | None = None
    top_k: int = 300
    calibrator: QMFCalibrator | None = None
    thresholds: dict = field(default_factory=dict)
    extraction: dict = field(default_factory=dict)  # how embeddings were made: n_crops, crop_sec, max_sec
    plda: PLDA | None = None
    qmf_kind: str = "seed9"  # QMF feature set when fitting (a fitted calibrator names its own)

    @property
    def final_stage(self) -> str:
        if self.calibrator is not None:
            return "qmf"
        if self.cohort is not None:
            return "asnorm"
        if self.plda is not None:
            return "plda"
        return "mean_sub" if self.mean is not None else "cosine"

    @property
    def norm_stage(self) -> str:
        """The last uncalibrated stage (the one QMF calibrates)."""
        return "asnorm" if self.cohort is not None else ("mean_sub" if self.mean is not None else "cosine")

    def uncalibrated(self, emb: Embeddings, trials: Trials) -> dict[str, np.ndarray]:
        """Scores of every uncalibrated stage that the state allows → ``{stage: (N,)}``."""
        out = {"cosine": cosine_scores(emb, trials)}
        if self.mean is not None:
            out["mean_sub"] = cosine_scores(emb, trials, mean=self.mean)
        if self.cohort is not None:
            base = out.get("mean_sub", out["cosine"])
            out["asnorm"] = asnorm_scores(emb, trials, base, self.cohort, self.top_k, mean=self.mean)
        if self.plda is not None:
            out["plda"] = plda_scores(self.plda, emb, trials)
        return out

    def features(self, emb: Embeddings, trials: Trials, scores: np.ndarray, durations: np.ndarray) -> np.ndarray:
        """QMF features ``(N, F)``; ``durations (len(emb.keys),)`` seconds, aligned with ``emb.keys``."""
        q = side_quality(emb.matrix, emb.raw_norms, durations)
        a, b = emb.rows(trials.enroll), emb.rows(trials.test)
        kind = feature_kind(self.calibrator.features) if self.calibrator is not None else self.qmf_kind
        return qmf_features(scores, q.rows(a), q.rows(b), kind)

    def score(self, emb: Embeddings, trials: Trials, durations: np.ndarray) -> dict[str, np.ndarray]:
        """All stages, including ``qmf`` (LLRs) when a calibrator is fitted."""
        out = self.uncalibrated(emb, trials)
        if self.calibrator is not None:
            out["qmf"] = self.calibrator.llr(self.features(emb, trials, out[self.norm_stage], durations))
        return out

    # ------------------------------------------------------------------ storage
    def save(self, run_dir: str | Path, extra: dict | None = None) -> None:
        run_dir = Path(run_dir)
        buf = io.BytesIO()
        np.savez(buf, mean=self.mean if self.mean is not None else np.zeros(0, np.float32),
                 cohort=self.cohort if self.cohort is not None else np.zeros((0, 0), np.float32),
                 **(self.plda.to_arrays() if self.plda is not None else {}))
        atomic_write_bytes(run_dir / STATE_FILE, buf.getvalue())
        d = {"final_stage": self.final_stage, "norm_stage": self.norm_stage, "asnorm_topk": self.top_k,
             "cohort_size": 0 if self.cohort is None else int(self.cohort.shape[0]),
             "calibrator": self.calibrator.to_dict() if self.calibrator is not None else None,
             "thresholds": self.thresholds, "extraction": self.extraction, **(extra or {})}
        atomic_write_text(run_dir / CALIBRATION_FILE, json.dumps(d, indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: str | Path) -> "ScoringPipeline | None":
        """The stored state of a run, or ``None`` when the run has none (never evaluated)."""
        run_dir = Path(run_dir)
        if not (run_dir / CALIBRATION_FILE).is_file() or not (run_dir / STATE_FILE).is_file():
            return None
        d = json.loads((run_dir / CALIBRATION_FILE).read_text())
        z = np.load(run_dir / STATE_FILE, allow_pickle=False)
        mean = z["mean"] if z["mean"].size else None
        cohort = z["cohort"] if z["cohort"].size else None
        cal = QMFCalibrator.from_dict(d["calibrator"]) if d.get("calibrator") else None
        return cls(mean, cohort, int(d.get("asnorm_topk", 300)), cal, d.get("thresholds", {}),
                   d.get("extraction", {}), PLDA.from_arrays(z))
