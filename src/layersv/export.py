"""ONNX export of a trained encoder: the backend alone, or the whole waveform → embedding model.

* ``backend``: inputs ``hidden (batch, layers, frames, dim)`` float32 and ``lengths (batch,)``
  int64 (valid frames) → ``embedding (batch, E)`` (raw, not normalised — as
  ``SpeakerEncoder.forward``).  Use it behind a feature cache or another runtime's encoder.
* ``full``: inputs ``wav (batch, samples)`` float32 and ``wav_lengths (batch,)`` int64 →
  ``embedding (batch, E)``.

Exported with the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``,
opset 17) with dynamic batch / time axes; :func:`check_parity` runs the file in onnxruntime
and compares it with PyTorch.  Never part of the export: the training head.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .model import load_model, save_model

OPSET = 17


class ExportError(RuntimeError):
    """The ONNX exporter cannot handle this model (the message names the failing operator)."""


class _Backend(nn.Module):
    def __init__(self, backend: nn.Module):
        super().__init__()
        self.backend = backend

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.backend(hidden, lengths)


def example_inputs(model, part: str, batch: int = 2, seconds: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs with unequal lengths (so masking is traced): ``full`` → wav; ``backend`` → hidden states."""
    g = torch.Generator().manual_seed(0)
    n = int(seconds * model.sample_rate)
    wav = torch.randn(batch, n, generator=g) * 0.1
    lens = torch.tensor([n] + [n * 2 // 3] * (batch - 1), dtype=torch.long)
    if part == "full":
        return wav, lens
    with torch.no_grad():
        hidden, flens = model.frontend(wav, lens)
    return hidden.contiguous(), flens.long()


def export_onnx(model, out: str | Path, part: str = "full") -> Path:
    """Write ``model`` (``part`` = ``full`` or ``backend``) to ``out`` (ONNX, opset 17).

    Raises :class:`ExportError` (a RuntimeError) naming the failing operator when the frontend cannot be exported.
    """
    if part not in ("full", "backend"):
        raise ValueError(f"part must be 'full' or 'backend', got {part!r}")
    model = model.eval()
    module = model if part == "full" else _Backend(model.backend).eval()
    args = example_inputs(model, part)
    names = ["wav", "wav_lengths"] if part == "full" else ["hidden", "lengths"]
    axes = ({"wav": {0: "batch", 1: "samples"}, "wav_lengths": {0: "batch"}} if part == "full" else
            {"hidden": {0: "batch", 2: "frames"}, "lengths": {0: "batch"}})
    axes["embedding"] = {0: "batch"}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(tmp), input_names=names, output_names=["embedding"],
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        tmp.replace(out)
    except Exception as e:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"ONNX export of the {part} model failed: {type(e).__name__}: {e}") from None
    return out


def check_parity(model, path: str | Path, part: str = "full", batch: int = 3, seconds: float = 2.0) -> float:
    """Max |ONNX − PyTorch| on fresh inputs of another batch size and length than the export's."""
    import onnxruntime as ort

    args = example_inputs(model, part, batch=batch, seconds=seconds)
    with torch.no_grad():
        ref = (model if part == "full" else model.backend)(*args).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    got = sess.run(None, {names[0]: args[0].numpy(), names[1]: args[1].numpy()})[0]
    return float(np.abs(got - ref).max())


def export_run(run: str | Path, out: str | Path, backend_only: bool = False, device: str = "cpu") -> dict:
    """``layersv export``: export a run's best model and check parity → ``{"path", "part", "max_abs_diff"}``.

    ``out`` ending in ``.json`` / ``.safetensors`` writes the portable PyTorch form instead
    (``<stem>.safetensors`` + ``<stem>.json``, what :func:`layersv.load_model` reads; no head).
    """
    model = load_model(run, "cpu")
    if Path(out).suffix in (".json", ".safetensors"):
        path = save_model(model, out)
        again = load_model(path)
        x = example_inputs(model, "full")
        with torch.no_grad():
            diff = float((again(*x) - model(*x)).abs().max())
        return {"path": str(path), "part": "safetensors", "max_abs_diff": diff}
    part = "backend" if backend_only else "full"
    path = export_onnx(model, out, part)
    return {"path": str(path), "part": part, "max_abs_diff": check_parity(model, path, part)}
