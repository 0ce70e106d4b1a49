"""``layersv models``: every registered backend with its parameter count on a base-size input."""

from __future__ import annotations

BASE_LAYERS, BASE_DIM = 13, 768  # hidden states and width of a base-size encoder (wav2vec2/HuBERT/WavLM base)


def model_table(in_layers: int = BASE_LAYERS, in_dim: int = BASE_DIM) -> str:
    from .backends import BACKENDS
    from .utils import count_parameters

    rows = [f"{'model':<16} {'params (M)':>10}   (input: {in_layers} hidden states × {in_dim})"]
    for name, cls in sorted(BACKENDS.items()):
        try:
            n = count_parameters(cls(in_layers=in_layers, in_dim=in_dim)) / 1e6
            rows.append(f"{name:<16} {n:>10.3f}")
        except Exception as e:  # a backend that needs another frontend (e.g. raw waveform)
            rows.append(f"{name:<16} {'n/a':>10}   ({e})")
    return "\n".join(rows)
