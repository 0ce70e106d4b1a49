"""Small shared helpers: atomic file writes, seeding, RNG state, run-folder logging."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file's bytes, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file so that a reader sees the old or the new content, never half of it."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace``."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_savefig(fig: Any, path: str | os.PathLike, **kwargs: Any) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", **kwargs)
    atomic_write_bytes(path, buf.getvalue())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) generator states as tensors, numbers and tuples only, so that
    ``torch.load(weights_only=True)`` reads them back (NumPy's key array is stored as an int64 tensor)."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"kind": str(kind), "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    if isinstance(n, dict):
        n = (n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    np.random.set_state(n)
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def setup_run_logger(run_dir: str | os.PathLike | None, name: str = "layersv") -> logging.Logger:
    """A logger writing to ``run_dir/training.log`` (appending, so a resumed run keeps its history)."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    logger.propagate = False
    if run_dir is not None:
        fh = logging.FileHandler(Path(run_dir) / "training.log", mode="a")
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%Y/%m/%d %H:%M:%S"))
        logger.addHandler(fh)
    return logger


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(batch,)`` valid lengths → ``(batch, max_len)`` bool mask, True on valid frames
    (shared by frontends and backends, so neither imports the other)."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def subsample(items: list, n: int, seed: int) -> list:
    """Up to ``n`` of ``items`` (0 = all), drawn without replacement with ``seed``, in their order."""
    if n and len(items) > n:
        return [items[i] for i in sorted(np.random.default_rng(seed).choice(len(items), n, replace=False))]
    return items
