"""Backends: per-layer frame features ``(B, L, T, D)`` + ``lengths`` → embeddings ``(B, E)``.

``BACKENDS`` is a plain dict from the registry name (as used on the command line, the
seeds' names) to the class.  Every class takes ``in_layers`` and ``in_dim`` first; its other
keyword arguments are the model's configuration (``model.args``).
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from .stats import Stats
from .superb import SUPERB

BACKENDS: dict[str, type[nn.Module]] = {
    "SUPERB": SUPERB,
    "Stats": Stats,
}


def get_backend_class(name: str) -> type[nn.Module]:
    if name not in BACKENDS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]


def build_backend(name: str, in_layers: int, in_dim: int, **args: Any) -> nn.Module:
    return get_backend_class(name)(in_layers=in_layers, in_dim=in_dim, **args)
