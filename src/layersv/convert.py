"""``layersv convert RUN --trust``: rewrite an old pickled run (``layersv-1``) as safetensors + JSON.

The only place in layersv that unpickles, and only when the caller says ``trust=True``: a pickle
can run any code, so convert only runs whose origin you trust.  Writes the files described in
:mod:`layersv.checkpoint`; the old files are kept, renamed ``*.legacy.pt``, so nothing is lost.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .checkpoint import FORMAT, LEGACY_FORMAT, CheckpointError, jsonable, save_resume_state, write_checkpoint


def _rng_safe(state: dict) -> dict:
    """An old RNG state (NumPy's as a tuple holding an ndarray) in the ``weights_only``-loadable form."""
    n = state.get("numpy")
    if isinstance(n, tuple):
        kind, key, pos, has_gauss, gauss = n
        n = {"kind": str(kind), "key": torch.from_numpy(np.asarray(key).astype(np.int64)), "pos": int(pos),
             "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)}
    return {**state, "numpy": n}


def _load_trusted(p: Path) -> dict:
    ckpt = torch.load(p, map_location="cpu", weights_only=False)  # trusted by the caller (--trust)
    if not isinstance(ckpt, dict) or ckpt.get("format") != LEGACY_FORMAT:
        raise CheckpointError(f"{p} is not a layersv checkpoint of the old format {LEGACY_FORMAT}")
    missing = [k for k in ("frontend", "backend", "state_dict") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{p}: old checkpoint without {', '.join(missing)}; cannot convert")
    return ckpt


def _description(ckpt: dict) -> dict:
    return {"frontend": ckpt["frontend"], "backend": ckpt["backend"]}


def convert_run(run: str | Path, trust: bool = False) -> list[Path]:
    """Convert ``run``'s ``model_best.pt`` / ``model_last.pt`` (or one ``.pt`` file) → files written."""
    run = Path(run)
    files = [run] if run.is_file() else [run / n for n in ("model_best.pt", "model_last.pt") if (run / n).is_file()]
    if run.is_dir() and (run / "model_last.pt").is_file() and not (run / "model_best.pt").is_file():
        try:  # already converted: model_last.pt is then a weights_only resume state
            torch.load(run / "model_last.pt", map_location="cpu", weights_only=True)
            files = []
        except Exception:
            pass
    if not files:
        raise FileNotFoundError(f"{run}: no old-format checkpoint (model_best.pt / model_last.pt) to convert")
    if not trust:
        raise CheckpointError(f"converting unpickles {', '.join(str(f) for f in files)}, which can run arbitrary "
                              f"code; pass --trust only if you trust whoever made these files")
    loaded = {f: _load_trusted(f) for f in files}
    written = []
    for f, ckpt in loaded.items():
        stem = f.with_suffix("")
        extra = {k: ckpt[k] for k in ("step", "valid") if k in ckpt}
        written.append(write_checkpoint(_description(ckpt), ckpt["state_dict"], stem,
                                        head_state=ckpt.get("head_state"), **jsonable(extra)))
        ts = ckpt.get("train_state")
        f.rename(f.with_name(f"{stem.name}.legacy.pt"))
        if ts is not None:
            save_resume_state(f.parent, {
                "format": FORMAT, "step": int(ckpt.get("step", -1)), "model": ckpt["state_dict"],
                "head": ts["head"], "optimizer": ts["optimizer"], "scheduler": ts["scheduler"],
                "state": jsonable(ts["state"]), "rng": [_rng_safe(r) for r in ts["rng"]], "ema": ts.get("ema")})
            written.append(f.parent / "model_last.pt")
    return written
