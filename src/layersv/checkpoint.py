"""Checkpoint files that never run code: weights as safetensors, everything else as JSON.

A saved encoder is a pair ``<stem>.safetensors`` (the ``SpeakerEncoder`` state dict) and
``<stem>.json`` (``{"format": "layersv-2", "frontend": {name, description}, "backend": {name,
args, in_layers, in_dim}, "weights": file, "sha256": of the weights file, "step", "valid", ...}``);
a training head, when saved beside it, is ``<stem>.head.safetensors`` (named in the JSON under
``"head"``).  A run folder holds

```
model_best.json  model_best.safetensors  model_best.head.safetensors   selected on validation trials
model_last.json  model_last.safetensors                                the last finished cycle
model_last.pt    resume state: head, optimizer, scheduler, EMA, RNG, counters (torch.load weights_only=True)
```

Reading never unpickles: JSON is parsed, safetensors holds raw tensors, and ``model_last.pt`` is
read by PyTorch's restricted ``weights_only`` unpickler (tensors, numbers, strings, containers
only).  Pickled checkpoints of the old format (``layersv-1``, ``model_best.pt``) are refused with
a message naming ``layersv convert RUN --trust``, the only place that unpickles, on request.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save

from .utils import atomic_torch_save, atomic_write_bytes, atomic_write_text, file_sha256

FORMAT = "layersv-2"
LEGACY_FORMAT = "layersv-1"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl")
RUN_STEMS = ("model_best", "model")  # a run folder, or a folder holding one exported model
RESUME_FILE = "model_last.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, of another format, or pickled."""


class LegacyCheckpointError(CheckpointError):
    """A pickled checkpoint of the old format: loading it could run code, so it is refused."""


def _legacy_error(p: Path) -> LegacyCheckpointError:
    run = p.parent if p.name in ("model_best.pt", "model_last.pt") else p
    return LegacyCheckpointError(
        f"{p} is a pickled checkpoint (old format {LEGACY_FORMAT}); it is not loaded because unpickling can run "
        f"arbitrary code. If you trust whoever made it, convert it once with `layersv convert {run} --trust` "
        f"(writes safetensors + JSON)")


def stem_of(path: str | os.PathLike) -> Path:
    """``run/model_best.json`` / ``.safetensors`` / ``.pt`` / no suffix → ``run/model_best``."""
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".json", ".safetensors") + PICKLE_SUFFIXES else p


def resolve(path: str | os.PathLike) -> Path:
    """The JSON description file of a checkpoint given as a run folder, model folder or file.

    Raises :class:`LegacyCheckpointError` for an old pickled checkpoint and ``FileNotFoundError``
    when nothing is there.
    """
    p = Path(path)
    if p.is_dir():
        for s in RUN_STEMS:
            if (p / f"{s}.json").is_file():
                return p / f"{s}.json"
        if (p / "model_best.pt").is_file():
            raise _legacy_error(p / "model_best.pt")
        raise FileNotFoundError(f"{p}: no model_best.json (not a trained run folder or an exported model)")
    j = stem_of(p).with_suffix(".json") if p.suffix != ".json" else p
    if j.is_file():
        return j
    if p.suffix in PICKLE_SUFFIXES and p.is_file():
        raise _legacy_error(p)
    raise FileNotFoundError(f"checkpoint not found: {j}")


def jsonable(x: Any) -> Any:
    """Numbers, strings, lists and dicts only (numpy scalars/arrays and tuples converted)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return float(x)
    if x is None or isinstance(x, str):
        return x
    if torch.is_tensor(x) and x.numel() == 1:
        return x.item()
    raise TypeError(f"cannot store {type(x).__name__} in a checkpoint description (JSON)")


def _tensor_bytes(tensors: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> bytes:
    # clone: safetensors refuses tensors that share storage (tied weights); contiguous CPU copies
    return save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, metadata=meta)


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Write a safetensors file atomically → its sha256."""
    data = _tensor_bytes(tensors, {"format": FORMAT})
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_tensors(path: Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file missing")
    if sha256 and file_sha256(path) != sha256:
        raise CheckpointError(f"{path}: checksum mismatch (truncated or replaced); the description "
                              f"{path.with_suffix('')}.json expects another file")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises SafetensorError / OSError
        raise CheckpointError(f"{path}: unreadable safetensors file ({e})") from None


def write_checkpoint(description: dict, state_dict: dict[str, torch.Tensor], path: str | os.PathLike,
                     head_state: dict[str, torch.Tensor] | None = None, **extra: Any) -> Path:
    """``<stem>.safetensors`` (+ ``<stem>.head.safetensors``) then ``<stem>.json``; each atomic → JSON path.

    The JSON is written last and names the weights' sha256, so a reader never pairs a description
    with weights it was not written for.
    """
    stem = stem_of(path)
    meta = {**jsonable(description), "format": FORMAT, **jsonable(extra)}
    meta["weights"] = stem.name + ".safetensors"
    meta["sha256"] = write_tensors(stem.with_suffix(".safetensors"), state_dict)
    if head_state is not None:
        head = stem.with_name(stem.name + ".head.safetensors")
        meta["head"] = {"weights": head.name, "sha256": write_tensors(head, head_state)}
    text = json.dumps(meta, indent=2, allow_nan=True) + "\n"
    atomic_write_text(stem.with_suffix(".json"), text)
    return stem.with_suffix(".json")


def read_description(path: str | os.PathLike) -> dict:
    """The JSON description only (no weights): step, validation figures, frontend/backend."""
    j = resolve(path)
    try:
        meta = json.loads(j.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{j}: unreadable checkpoint description ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{j} is not a layersv checkpoint description (format {FORMAT})")
    meta["_path"] = str(j)
    return meta


def read_checkpoint(path: str | os.PathLike, with_head: bool = False) -> dict:
    """Description + ``"state_dict"`` (and ``"head_state"`` when ``with_head`` and saved)."""
    meta = read_description(path)
    j = Path(meta["_path"])
    meta["state_dict"] = read_tensors(j.with_name(meta["weights"]), meta.get("sha256"))
    if with_head and isinstance(meta.get("head"), dict):
        meta["head_state"] = read_tensors(j.with_name(meta["head"]["weights"]), meta["head"].get("sha256"))
    return meta


def description_fingerprint(run: str | os.PathLike) -> str:
    """Changes whenever the best model is rewritten (the weights' sha256 from its description)."""
    meta = read_description(run)
    return str(meta.get("sha256", ""))


# ---- resume state (model_last.pt) ------------------------------------------------------------

def save_resume_state(run_dir: str | os.PathLike, state: dict) -> None:
    """``model_last.pt``: only tensors, numbers, strings and containers (``weights_only``-loadable)."""
    atomic_torch_save(state, Path(run_dir) / RESUME_FILE)


def load_resume_state(run_dir: str | os.PathLike) -> dict:
    """Read ``model_last.pt`` with PyTorch's restricted unpickler (``weights_only=True``)."""
    p = Path(run_dir) / RESUME_FILE
    if not p.is_file():
        raise FileNotFoundError(f"cannot resume {run_dir}: no {RESUME_FILE} (did the first cycle finish?)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{p}: refused or unreadable resume state ({first}). A run of the old pickled format "
                              f"must be converted first: `layersv convert {Path(run_dir)} --trust`") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a layersv resume state (format {FORMAT}); "
                              f"convert an old run with `layersv convert {Path(run_dir)} --trust`")
    return state
