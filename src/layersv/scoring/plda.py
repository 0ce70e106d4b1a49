"""Two-covariance PLDA scoring (Brümmer & de Villiers, "The speaker partitioning problem", Odyssey 2010;
Ioffe, "Probabilistic linear discriminant analysis", ECCV 2006).

Model: an embedding x = y + e with speaker variable y ~ N(0, B) and channel/session term
e ~ N(0, W).  The verification LLR of a pair (x1, x2), same speaker vs different speakers, is

    llr = ½ x1ᵀ Q x1 + ½ x2ᵀ Q x2 + x1ᵀ P x2 + c,   T = B + W,
    A = (T − B T⁻¹ B)⁻¹,  Q = T⁻¹ − A,  P = T⁻¹ B A,  c = logdet T − ½ logdet [[T, B], [B, T]].

B and W are estimated on training embeddings that have **several recordings per speaker**
(W is the within-speaker scatter; with one recording per speaker it cannot be estimated and
fitting raises).  Embeddings are mean-subtracted, length-normalised and (optionally) reduced to
``dim`` dimensions by LDA first, as is usual for deep speaker embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..utils import subsample


def _prep(x: np.ndarray, mean: np.ndarray, proj: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64) - mean
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ proj


def _scatter(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Between- and within-speaker covariances of rows ``x (N, D)``; ``labels (N,)`` speaker ids."""
    spk, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    means = np.zeros((len(spk), x.shape[1]))
    np.add.at(means, inv, x)
    means /= counts[:, None]
    d = x - means[inv]
    within = d.T @ d / len(x)
    mu = means - x.mean(0)
    between = (mu * counts[:, None]).T @ mu / len(x)
    return between, within


@dataclass
class PLDA:
    """Fitted two-covariance PLDA: preprocessing (mean, projection) and the scoring matrices."""

    mean: np.ndarray  # (E,)
    proj: np.ndarray  # (E, d) LDA projection (identity when no reduction)
    Q: np.ndarray  # (d, d)
    P: np.ndarray  # (d, d)
    const: float

    @classmethod
    def fit(cls, emb: np.ndarray, labels: list | np.ndarray, dim: int = 0, eps: float = 1e-6) -> "PLDA":
        """Fit on training embeddings ``emb (N, E)`` of speakers ``labels (N,)``; ``dim`` = LDA size (0 = none)."""
        labels = np.asarray(labels)
        _, counts = np.unique(labels, return_counts=True)
        if len(counts) < 2 or (counts >= 2).sum() < 2:
            raise ValueError("PLDA needs at least two training speakers with two or more recordings each "
                             "(the within-speaker covariance cannot be estimated otherwise)")
        mean = emb.astype(np.float64).mean(0)
        x = _prep(emb, mean, np.eye(emb.shape[1]))
        proj = np.eye(emb.shape[1])
        if dim and dim < emb.shape[1]:
            b, w = _scatter(x, labels)
            vals, vecs = np.linalg.eigh(np.linalg.solve(w + eps * np.eye(len(w)), b))  # LDA directions
            proj = np.real(vecs[:, np.argsort(vals)[::-1][:dim]])
            x = x @ proj
        b, w = _scatter(x, labels)
        return cls.from_covariances(mean, proj, b + eps * np.eye(len(b)), w + eps * np.eye(len(w)))

    @classmethod
    def from_covariances(cls, mean: np.ndarray, proj: np.ndarray, b: np.ndarray, w: np.ndarray) -> "PLDA":
        """The scoring matrices for between-speaker covariance ``b`` and within-speaker covariance ``w``."""
        t = b + w
        t_inv = np.linalg.inv(t)
        a = np.linalg.inv(t - b @ t_inv @ b)
        joint = np.block([[t, b], [b, t]])
        const = np.linalg.slogdet(t)[1] - 0.5 * np.linalg.slogdet(joint)[1]
        return cls(mean, proj, t_inv - a, t_inv @ b @ a, float(const))

    def transform(self, emb: np.ndarray) -> np.ndarray:
        return _prep(emb, self.mean, self.proj)

    def score_pairs(self, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        """LLRs of aligned pairs of *transformed* vectors ``(N, d)`` → ``(N,)``."""
        return (0.5 * np.einsum("ij,jk,ik->i", x1, self.Q, x1) + 0.5 * np.einsum("ij,jk,ik->i", x2, self.Q, x2)
                + np.einsum("ij,jk,ik->i", x1, self.P, x2) + self.const)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"plda_mean": self.mean, "plda_proj": self.proj, "plda_Q": self.Q, "plda_P": self.P,
                "plda_const": np.array([self.const])}

    @classmethod
    def from_arrays(cls, z) -> "PLDA | None":
        if "plda_Q" not in z or not z["plda_Q"].size:
            return None
        return cls(z["plda_mean"], z["plda_proj"], z["plda_Q"], z["plda_P"], float(z["plda_const"][0]))


def plda_scores(plda: PLDA, emb, trials, chunk: int = 500_000) -> np.ndarray:
    """PLDA LLR of every trial → ``(N,)``; each utterance is transformed once."""
    x = plda.transform(emb.matrix)
    a, b = emb.rows(trials.enroll), emb.rows(trials.test)
    out = np.empty(len(a))
    for s in range(0, len(a), chunk):
        out[s : s + chunk] = plda.score_pairs(x[a[s : s + chunk]], x[b[s : s + chunk]])
    return out


def plda_training_rows(rows, max_speakers: int, per_speaker: int, seed: int) -> list[tuple[str, str]]:
    """The (path, speaker) rows a PLDA is fitted on: speakers with two or more recordings, up to
    ``max_speakers`` of them × ``per_speaker`` recordings each (0 = all), drawn with ``seed``; the same
    rule for ``layersv eval --score_plda`` and PLDA-scored validation (``train.valid_scoring plda``)."""
    by_spk: dict[str, list[str]] = {}
    for path, spk in sorted(set(rows)):
        by_spk.setdefault(spk, []).append(path)
    speakers = subsample([s for s in sorted(by_spk) if len(by_spk[s]) >= 2], max_speakers, seed + 2)
    return [(path, s) for s in speakers for path in subsample(by_spk[s], per_speaker, seed)]


def fit_speaker_plda(emb: np.ndarray, labels: list, dim: int = 0) -> PLDA:
    """:meth:`PLDA.fit` with the default LDA size ``dim`` = min(embedding size, speakers − 1)."""
    return PLDA.fit(emb, labels, dim=dim or min(emb.shape[1], len(set(labels)) - 1))
