"""layersv: speaker verification on the multi-layer features of pretrained speech encoders."""

from __future__ import annotations

__version__ = "0.1.0"


def load_model(path, device: str = "cpu"):
    """Rebuild a trained :class:`~layersv.model.SpeakerEncoder` from a checkpoint or run folder."""
    from .model import load_model as _load

    return _load(path, device)


__all__ = ["load_model", "__version__"]
