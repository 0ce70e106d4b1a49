"""Nearest-speaker search by inner product over unit vectors: exact (numpy) or faiss.

Both indexes hold ``(id, vector)`` pairs, ``vectors (N, E)`` float32 L2-normalised, and answer
``search(queries (Q, E), k)`` → ``(scores (Q, k), ids (Q, k))``, best first (missing entries:
score ``-inf``, id ``-1``).  :class:`ExactIndex` is the reference and the fallback when faiss is
not installed.  :class:`FaissIndex` is a flat inner-product index below ``ivf_min`` vectors
(exact, BLAS) and an IVF-flat index above it (``nlist ≈ 4·√N`` k-means cells, ``nprobe``
visited per query); both support adding and removing ids in place, so an enrolment or a
deletion updates the index without a rebuild.
"""

from __future__ import annotations

import threading

import numpy as np

IVF_MIN = 20_000  # below this many speakers the flat (exact) faiss index is used
DEFAULT_NPROBE = 128  # of ~1265 cells at 100 k speakers: recall@10 0.97, 30x faster than exact


def have_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _as_queries(q: np.ndarray, dim: int) -> np.ndarray:
    q = np.ascontiguousarray(np.atleast_2d(np.asarray(q, dtype=np.float32)))
    if q.shape[1] != dim:
        raise ValueError(f"queries of dimension {q.shape[1]}, the index holds {dim}")
    return q


class ExactIndex:
    """Exact top-k by a matrix product ``(Q, E) @ (E, N)`` and ``argpartition``."""

    kind = "exact"

    def __init__(self, dim: int):
        self.dim = dim
        self.ids = np.zeros(0, dtype=np.int64)
        self.matrix = np.zeros((0, dim), dtype=np.float32)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert (or replace) ``ids (N,)`` with ``vectors (N, E)``."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = _as_queries(vectors, self.dim)
        with self._lock:
            keep = ~np.isin(self.ids, ids)
            self.ids = np.concatenate([self.ids[keep], ids])
            self.matrix = np.concatenate([self.matrix[keep], vectors])

    def remove(self, ids: np.ndarray) -> None:
        with self._lock:
            keep = ~np.isin(self.ids, np.asarray(ids, dtype=np.int64))
            self.ids, self.matrix = self.ids[keep], self.matrix[keep]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _as_queries(queries, self.dim)
        with self._lock:
            ids, mat = self.ids, self.matrix
        n = len(ids)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        out = np.full((len(q), k), -1, dtype=np.int64)
        if n == 0:
            return scores, out
        sims = q @ mat.T  # (Q, N)
        kk = min(k, n)
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk] if kk < n else np.tile(np.arange(n), (len(q), 1))
        part = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-part, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        scores[:, :kk] = np.take_along_axis(sims, top, axis=1)
        out[:, :kk] = ids[top]
        return scores, out


class FaissIndex:
    """faiss ``IndexIDMap2(IndexFlatIP)`` below ``ivf_min`` vectors, ``IndexIVFFlat`` (inner product) above.

    The IVF quantiser is trained once, on the vectors given at construction (with all OpenMP
    threads); later additions are assigned to the existing cells.  ``nprobe`` trades speed for
    recall.  Searches then run on ``search_threads`` OpenMP threads (process-wide faiss setting).
    """

    def __init__(self, dim: int, ids: np.ndarray | None = None, vectors: np.ndarray | None = None,
                 ivf_min: int = IVF_MIN, nlist: int | None = None, nprobe: int = DEFAULT_NPROBE, seed: int = 0,
                 search_threads: int = 1):
        import faiss

        self.dim = dim
        self._lock = threading.Lock()
        n = 0 if ids is None else len(ids)
        if n >= ivf_min:
            vectors = _as_queries(vectors, dim)
            nlist = nlist or int(max(1, min(n // 39, round(4 * np.sqrt(n)))))  # faiss wants >= 39 points per cell
            quantizer = faiss.IndexFlatIP(dim)
            self.index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self.index.cp.seed = seed
            self.index.train(vectors)
            self.index.nprobe = min(nprobe, nlist)
            self._quantizer = quantizer  # keep the Python wrapper alive
            self.kind = f"faiss-ivf(nlist={nlist},nprobe={self.index.nprobe})"
        else:
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            self.kind = "faiss-flat"
        if n:
            self.add(ids, vectors)
        # one query at a time: OpenMP workers only spin (and steal the cores torch and BLAS need)
        faiss.omp_set_num_threads(search_threads)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = _as_queries(vectors, self.dim)
        with self._lock:
            self.index.remove_ids(ids)
            self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> None:
        with self._lock:
            self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _as_queries(queries, self.dim)
        with self._lock:
            scores, ids = self.index.search(q, k)
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        return scores, ids.astype(np.int64)


def build_index(dim: int, ids: np.ndarray, vectors: np.ndarray, kind: str = "auto", **kw) -> ExactIndex | FaissIndex:
    """``kind``: ``"auto"`` (faiss if installed, else exact), ``"faiss"`` or ``"exact"``."""
    if kind not in ("auto", "faiss", "exact"):
        raise ValueError(f"unknown index kind {kind!r} (auto | faiss | exact)")
    if kind == "faiss" or (kind == "auto" and have_faiss()):
        return FaissIndex(dim, ids, vectors, **kw)
    idx = ExactIndex(dim)
    if len(ids):
        idx.add(ids, vectors)
    return idx
