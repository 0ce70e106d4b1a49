"""``layersv models``: every registered backend with its parameter count on a base-size input.

The ``spec`` column repeats the counts computed from the seeds' code (seeds-spec §2–§4) where
they were given for the same input; ``layersv models`` for a large encoder
(``model_table(25, 1024)``) reproduces the spec's large-size numbers (UniPool 3.01 M with 24
transformer states, L-TDNN_ECAPA 6.70 M, LAP+ASTP 2.31 M, SUPERB+ASTP 2.50 M, MHFA 2.37 M).
"""

from __future__ import annotations
from .backends import BACKENDS
from .utils import count_parameters

BASE_LAYERS, BASE_DIM = 13, 768  # hidden states and width of a base-size encoder (wav2vec2/HuBERT/WavLM base)

# (layers, dim) -> model -> parameters computed in seeds-spec.md
SPEC_COUNTS = {
    (13, 768): {"UniPool": 2.87e6, "L-TDNN_ECAPA": 5.72e6, "L-TDNN_D3Net": 6.48e6},
    (25, 1024): {"UniPool": 3.01e6, "L-TDNN_ECAPA": 6.70e6, "LAP": 2.31e6, "SUPERB": 2.50e6, "MHFA": 2.37e6},
}

NOTES = {
    "UniPool": "hidden state 0 excluded (12 used)",
    "LAP": "spec 2.31 M is WavLM-Large (25 x 1024)",
    "SUPERB": "spec 2.50 M is WavLM-Large",
    "MHFA": "spec 2.37 M is WavLM-Large (SUPERB keys/values)",
    "X-vector": "on 768-d input; 24 MFCC: 4.48 M (seed tail BN6-ReLU-Linear-ReLU-BN7)",
    "ECAPA-TDNN": "C=512 on 768-d input; 80 MFCC: 6.98 M",
    "SincNet": "on 768-d input; 80 sinc filters: 8.57 M",
    "WavLM-RawNetX": "raw-waveform branch + fusion",
    "ExploreWV2": "no parameters (mean of hidden state 1)",
    "FinetuneWV2": "no parameters (CLS inside the encoder: --cls_token)",
    "FinetuneWV2-CLSHead": "2-layer CLS transformer",
}


def model_table(in_layers: int = BASE_LAYERS, in_dim: int = BASE_DIM) -> str:
    spec = SPEC_COUNTS.get((in_layers, in_dim), {})
    rows = [f"{'model':<20} {'params (M)':>10} {'spec (M)':>9}   (input: {in_layers} hidden states × {in_dim})"]
    for name, cls in sorted(BACKENDS.items()):
        try:
            n = count_parameters(cls(in_layers=in_layers, in_dim=in_dim)) / 1e6
            s = f"{spec[name] / 1e6:.2f}" if name in spec else "-"
            note = NOTES.get(name, "") if (in_layers, in_dim) == (BASE_LAYERS, BASE_DIM) else ""
            rows.append(f"{name:<20} {n:>10.3f} {s:>9}   {note}".rstrip())
        except Exception as e:  # a backend whose constructor rejects this input size
            rows.append(f"{name:<20} {'n/a':>10}   ({e})")
    return "\n".join(rows)
