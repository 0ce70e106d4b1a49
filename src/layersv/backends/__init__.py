"""Backends: per-layer frame features ``(B, L, T, D)`` + ``lengths`` → embeddings ``(B, E)``.

``BACKENDS`` is a plain dict from the registry name (as used on the command line, the
seeds' names) to the class.  Every class takes ``in_layers`` and ``in_dim`` first; its other
keyword arguments are the model's configuration (``model.args``).

Analysis API: backends with static layer weights expose ``layer_weights() -> (L,)``; backends whose
layer weighting depends on the input (UniPool, L-TDNN, LAP, MHFA) expose
``layer_attention(hidden, lengths) -> (B, L)`` (attention averaged over heads and valid frames).
Backends with ``needs_waveform = True`` (WavLM-RawNetX) also receive ``wav=``/``wav_lengths=``.
Backends with ``trainable = False`` (Stats) are fitted, not trained: :func:`is_trainable`.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from .ecapa import ECAPA_TDNN
from .fusion import WavLMRawNetX
from .lap import LAP
from .ltdnn import LTDNN_D3Net, LTDNN_ECAPA
from .mhfa import MHFA
from .sincnet import SincNet
from .stats import Stats
from .superb import SUPERB
from .unipool import UniPool
from .wav2vec2_baselines import ExploreWV2, FinetuneWV2, FinetuneWV2CLSHead
from .xvector import XVector

BACKENDS: dict[str, type[nn.Module]] = {
    "SUPERB": SUPERB,
    "UniPool": UniPool,
    "L-TDNN_ECAPA": LTDNN_ECAPA,
    "L-TDNN_D3Net": LTDNN_D3Net,
    "LAP": LAP,
    "MHFA": MHFA,
    "X-vector": XVector,
    "ECAPA-TDNN": ECAPA_TDNN,
    "SincNet": SincNet,
    "ExploreWV2": ExploreWV2,
    "FinetuneWV2": FinetuneWV2,
    "FinetuneWV2-CLSHead": FinetuneWV2CLSHead,
    "WavLM-RawNetX": WavLMRawNetX,
    "Stats": Stats,
}


def get_backend_class(name: str) -> type[nn.Module]:
    if name not in BACKENDS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]


def build_backend(name: str, in_layers: int, in_dim: int, **args: Any) -> nn.Module:
    if name == "FinetuneWV2" and "num_layers" in args:  # a checkpoint of the earlier FinetuneWV2 (now -CLSHead)
        name = "FinetuneWV2-CLSHead"
    return get_backend_class(name)(in_layers=in_layers, in_dim=in_dim, **args)


def is_trainable(name: str) -> bool:
    """Whether the backend ``name`` learns by gradient descent (class attribute ``trainable``, default True)."""
    return bool(getattr(get_backend_class(name), "trainable", True))
