"""Enrol, verify and identify speakers against a :class:`~layersv.enrol.db.SpeakerDB` with a run's model.

Scores are exactly those of ``layersv verify``: the enrolled speaker is one side of a trial,
the test recording the other, and the run's stored :class:`~layersv.scoring.pipeline.ScoringPipeline`
(mean subtraction → AS-norm → QMF calibration, whichever the run has) scores it; the decision
uses the run's stored operating point (:func:`layersv.scoring.decision.decide`).  The enrolled side is the
speaker's mean embedding (re-normalised mean of its unit utterance embeddings) with quality
measures summed (duration, s) or averaged (raw norm) over its utterances.

Identification searches an index of all speaker means in the scoring space (minus the run's
training mean, re-normalised, so the inner product is the ``mean_sub`` cosine) for
``max(top, candidates)`` candidates, then rescores those with the full pipeline and ranks them
by the final-stage score (AS-norm can reorder them).  The answer is the best candidate when it
is accepted at the operating point, else "unknown speaker".
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np
import torch

from ..data.audio import AudioError
from ..data.dataset_folder import Trials
from ..embed.batches import Embeddings
from ..embed.files import embed_for_scoring
from ..model import load_model
from ..scoring.decision import decide, scoring_state
from ..utils import file_sha256
from .db import EmptyDatabase, SpeakerDB, Utterance
from .index import build_index

CANDIDATES = 50  # index hits rescored by the full pipeline


def model_fingerprint(model) -> tuple[str, dict]:
    """``(sha256 hex, description)`` of an encoder: its architecture and every weight's bytes.

    Independent of the checkpoint file format; two runs agree only if they embed identically.
    """
    info = model.describe() if hasattr(model, "describe") else {"class": type(model).__name__}
    h = hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode())
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        t = v.detach().cpu().contiguous()
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    summary = {"frontend": info.get("frontend", {}).get("name"), "backend": info.get("backend", {}).get("name"),
               "embedding_dim": int(getattr(model, "embedding_dim", 0))}
    return h.hexdigest(), summary


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Recognizer:
    """A run's model + scoring state + a speaker database: ``enroll``, ``verify``, ``identify``.

    ``Recognizer(run, db)``: ``run`` a trained (and evaluated) run folder, ``db`` the SQLite
    path (created on first use).  ``index`` is ``"auto"`` (faiss if installed, else exact
    numpy), ``"faiss"`` or ``"exact"``.  Thread-safe: a service may call it concurrently.
    """

    def __init__(self, run: str | os.PathLike, db: str | os.PathLike, device: str = "cpu", p_target: float = 0.01,
                 index: str = "auto", candidates: int = CANDIDATES, model=None):
        self.run = Path(run)
        self.model = model if model is not None else load_model(self.run, device)
        self.pipe, self.stored = scoring_state(self.run)
        self.p_target = p_target
        self.index_kind = index
        self.candidates = candidates
        self.model_id, info = model_fingerprint(self.model)
        info["run"] = str(self.run.resolve())
        self.db = SpeakerDB(db, self.model_id, info, self.model.embedding_dim)
        self._index = None
        self._index_gen = -1
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ embedding
    def embed(self, path: str | os.PathLike, label: str | None = None) -> Utterance:
        """One recording → :class:`~layersv.enrol.db.Utterance` (same checks as ``layersv verify``)."""
        fe = embed_for_scoring(self.model, path, self.pipe)
        return Utterance(fe.embedding, fe.raw_norm, fe.duration, label or str(path), file_sha256(path))

    def _scoring_space(self, x: np.ndarray) -> np.ndarray:
        """Unit embeddings ``(N, E)`` → the ``mean_sub`` space (or unchanged without a stored mean)."""
        x = np.atleast_2d(x).astype(np.float32)
        return x if self.pipe.mean is None else _unit_rows(x - self.pipe.mean[None, :].astype(np.float32))

    # ------------------------------------------------------------------ enrol / delete
    def enroll(self, name: str, audio: list[str | os.PathLike], labels: list[str] | None = None) -> dict:
        """Embed every file (all are checked before anything is stored) and add them to ``name``.

        Returns ``{"name", "new", "added", "skipped" (already enrolled audio), "utterances",
        "duration"}``; raises :class:`AudioError` listing every unusable file.
        """
        if not audio:
            raise ValueError("no audio files given")
        labels = labels or [str(a) for a in audio]
        utts, problems = [], []
        for p, lab in zip(audio, labels):
            try:
                utts.append(self.embed(p, lab))
            except AudioError as e:
                problems.append(str(e))
        if problems:
            raise AudioError(f"{len(problems)} unusable file(s), nothing enrolled:\n  " + "\n  ".join(problems))
        r = self.db.add(name, utts)
        with self._lock:
            if self._index is not None and self._index_gen == r["generation"] - 1:
                self._index.add([r["speaker"].id], self._scoring_space(r["mean"]))
                self._index_gen = r["generation"]
        sp = r["speaker"]
        return {"name": sp.name, "new": r["new"], "added": r["added"], "skipped": r["skipped"],
                "utterances": sp.n_utts, "duration": sp.duration}

    def delete(self, name: str) -> dict:
        sid, gen = self.db.delete(name)
        with self._lock:
            if self._index is not None and self._index_gen == gen - 1:
                self._index.remove([sid])
                self._index_gen = gen
        return {"name": name, "deleted": True}

    def speakers(self) -> list[dict]:
        return [s.to_dict() for s in self.db.speakers()]

    # ------------------------------------------------------------------ scoring
    def _score(self, test: Utterance, cands: list) -> dict:
        """Score ``test`` against enrolled ``cands`` ``[(Speaker, mean (E,))]`` → final scores + decision."""

        keys = [f"s{sp.id}" for sp, _ in cands] + ["test"]
        mat = np.stack([m for _, m in cands] + [test.embedding])
        norms = np.array([sp.raw_norm for sp, _ in cands] + [test.raw_norm])
        durs = np.array([sp.duration for sp, _ in cands] + [test.duration])
        trials = Trials(np.zeros(len(cands), dtype=np.int64), keys[:-1], ["test"] * len(cands))
        stages = self.pipe.score(Embeddings(keys, mat, norms), trials, durs)
        final = stages[self.pipe.final_stage]
        return {"scores": final, "stages": stages, **decide(self.pipe, final, self.p_target, self.stored, self.run)}

    def _header(self, test: Utterance) -> dict:
        return {"stage": self.pipe.final_stage, "calibrated": self.pipe.calibrator is not None,
                "p_target": self.p_target, "duration": test.duration}

    def verify(self, name: str, audio: str | os.PathLike) -> dict:
        """Enrolled ``name`` vs one recording → the ``layersv verify`` result for that trial.

        ``{"name", "score" (LLR when calibrated), "stage", "calibrated", "threshold",
        "threshold_kind", "accept", "posterior" (calibrated only), "stages", "duration"}``.
        """
        sp, mean = self.db.speaker(name)
        test = self.embed(audio)
        r = self._score(test, [(sp, mean)])
        out = {"name": sp.name, "score": float(r["scores"][0]), **self._header(test),
               "stages": {k: float(v[0]) for k, v in r["stages"].items()}}
        for k in ("threshold", "threshold_kind", "accept", "posterior"):
            if k in r:
                out[k] = r[k] if not isinstance(r[k], np.ndarray) else r[k][0].item()
        return out

    def index(self):
        """The current speaker-mean index, rebuilt when the database changed under it."""
        with self._lock:
            gen = self.db.generation
            if self._index is None or gen != self._index_gen:
                ids, means = self.db.means()
                self._index = build_index(self.db.dim, ids, self._scoring_space(means) if len(ids) else means,
                                          self.index_kind)
                self._index_gen = gen
            return self._index

    def search(self, emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Index search of unit embeddings ``(Q, E)`` → ``(mean_sub cosines (Q, k), speaker ids (Q, k))``."""
        return self.index().search(self._scoring_space(emb), k)

    def identify(self, audio: str | os.PathLike, top: int = 5) -> dict:
        """The ``top`` closest enrolled speakers, scored and decided as in :meth:`verify`.

        ``{"speaker" (the accepted best match, or None), "unknown" (bool; None without an
        operating point), "top": [{"name", "score", "accept", "posterior"?}], "stage",
        "calibrated", "threshold", "threshold_kind", "enrolled", "index"}``.
        """
        if top < 1:
            raise ValueError(f"--top must be >= 1, got {top}")
        test = self.embed(audio)
        return self.identify_embedding(test, top)

    def identify_embedding(self, test: Utterance, top: int = 5) -> dict:
        idx = self.index()
        n = len(idx)
        if n == 0:
            raise EmptyDatabase(f"no speaker is enrolled in {self.db.path}")
        _, ids = self.search(test.embedding, min(n, max(top, self.candidates)))
        found = self.db.by_ids([i for i in ids[0] if i >= 0])
        cands = [found[i] for i in ids[0] if i in found]
        r = self._score(test, cands)
        order = np.argsort(-r["scores"], kind="stable")[:top]
        rows = []
        for i in order:
            row = {"name": cands[i][0].name, "score": float(r["scores"][i])}
            row["accept"] = None if r["accept"] is None else bool(r["accept"][i])
            if "posterior" in r:
                row["posterior"] = float(r["posterior"][i])
            rows.append(row)
        best = rows[0] if rows else None
        unknown = None if best is None or best["accept"] is None else not best["accept"]
        return {"speaker": best["name"] if best and best["accept"] else None, "unknown": unknown, "top": rows,
                **self._header(test), "threshold": r["threshold"], "threshold_kind": r["threshold_kind"],
                "enrolled": n, "index": idx.kind}
