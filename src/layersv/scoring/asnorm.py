"""Adaptive symmetric score normalisation (AS-norm) with a top-k cohort.

Matějka et al., "Analysis of score normalization in multilingual speaker recognition",
Interspeech 2017; used in LAP ("Rethinking…", phase 5, seeds-spec §4.6).  For a trial
``(e, t)`` with raw score ``s``::

    s_norm = ½ [(s − μ_e) / σ_e + (s − μ_t) / σ_t]

where ``μ_x``, ``σ_x`` are the mean and unbiased standard deviation of the ``top_k`` largest
cosines between ``x`` and the cohort (one embedding per cohort speaker).  The statistics
depend only on the utterance, not on the trial, so they are computed **once per unique
utterance** (chunked matrix products + ``np.partition``) and gathered per trial: 1 M trials
over 20 k utterances cost 20 k cohort rows, not 2 M.

Shapes: embeddings ``(N, E)`` and cohort ``(K, E)`` are L2-normalised float32.
"""

from __future__ import annotations

import numpy as np

from ..data.dataset_folder import Trials
from ..embed.batches import Embeddings


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """``(N, E)`` → rows of unit L2 norm (float32)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def speaker_means(matrix: np.ndarray, speakers: list[str], max_speakers: int = 0,
                  seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Cohort entries: the mean embedding of each speaker, re-normalised → ``(K, E)``, names.

    ``matrix (N, E)`` holds one embedding per utterance, ``speakers`` its speaker.
    ``max_speakers`` > 0 keeps a seeded random subset of that many speakers.
    """
    names = sorted(set(speakers))
    if max_speakers and len(names) > max_speakers:
        pick = np.random.default_rng(seed).choice(len(names), max_speakers, replace=False)
        names = [names[i] for i in sorted(pick)]
    idx = {s: i for i, s in enumerate(names)}
    rows = np.array([idx.get(s, -1) for s in speakers])
    keep = rows >= 0
    sums = np.zeros((len(names), matrix.shape[1]), dtype=np.float64)
    np.add.at(sums, rows[keep], matrix[keep])
    return normalize_rows(sums), names


def cohort_stats(x: np.ndarray, cohort: np.ndarray, top_k: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cohort statistics of each row of ``x (N, E)`` → ``(mean (N,), std (N,))``.

    ``std`` is the unbiased (ddof = 1) standard deviation of the ``top_k`` largest cosines
    against ``cohort (K, E)``; ``top_k`` is capped at ``K``.  Work is chunked over ``N`` so
    memory stays at ``chunk · K`` floats.
    """
    x = np.asarray(x, dtype=np.float32)
    c = np.asarray(cohort, dtype=np.float32)
    k = int(min(max(top_k, 2), c.shape[0]))
    if c.shape[0] < 2:
        raise ValueError(f"AS-norm needs a cohort of at least 2 entries, got {c.shape[0]}")
    mu = np.empty(x.shape[0], dtype=np.float64)
    sd = np.empty(x.shape[0], dtype=np.float64)
    ct = np.ascontiguousarray(c.T)
    for s in range(0, x.shape[0], chunk):
        sims = x[s : s + chunk] @ ct  # (n, K)
        if k < c.shape[0]:
            sims = np.partition(sims, c.shape[0] - k, axis=1)[:, c.shape[0] - k :]  # (n, k) the k largest
        top = sims.astype(np.float64)
        mu[s : s + chunk] = top.mean(1)
        sd[s : s + chunk] = top.std(1, ddof=1)
    return mu, np.maximum(sd, 1e-8)


def asnorm(scores: np.ndarray, enroll_stats: tuple[np.ndarray, np.ndarray],
           test_stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``½[(s − μ_e)/σ_e + (s − μ_t)/σ_t]`` element-wise over trials ``(N,)``."""
    (me, se), (mt, st) = enroll_stats, test_stats
    s = np.asarray(scores, dtype=np.float64)
    return 0.5 * ((s - me) / se + (s - mt) / st)


def asnorm_scores(emb: Embeddings, trials: Trials, scores: np.ndarray, cohort: np.ndarray, top_k: int,
                  mean: np.ndarray | None = None, chunk: int = 2048) -> np.ndarray:
    """AS-norm of ``scores (N,)`` of ``trials`` whose embeddings are in ``emb``.

    ``mean (E,)``: subtracted (then re-normalised) from the utterance embeddings, as for the
    ``mean_sub`` scores being normalised; the cohort must already be in that space.
    Statistics are computed once per unique utterance of the trial list.
    """
    a, b = emb.rows(trials.enroll), emb.rows(trials.test)
    used = np.unique(np.concatenate([a, b]))
    x = emb.matrix[used]
    if mean is not None:
        x = normalize_rows(x - mean[None, :].astype(np.float32))
    mu, sd = cohort_stats(x, cohort, top_k, chunk)
    pos = np.full(emb.matrix.shape[0], -1, dtype=np.int64)
    pos[used] = np.arange(used.shape[0])
    ia, ib = pos[a], pos[b]
    return asnorm(scores, (mu[ia], sd[ia]), (mu[ib], sd[ib]))


def prepare_cohort(matrix: np.ndarray, speakers: list[str], mean: np.ndarray | None, max_speakers: int = 0,
                   seed: int = 0) -> np.ndarray:
    """Cohort in the scoring space: utterance embeddings (minus ``mean``) → speaker means → ``(K, E)``."""
    m = np.asarray(matrix, dtype=np.float32)
    if mean is not None:
        m = normalize_rows(m - mean[None, :].astype(np.float32))
    return speaker_means(m, speakers, max_speakers, seed)[0]
