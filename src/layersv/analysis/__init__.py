"""Analysis of encoders and trained backends: which hidden states carry the speaker.

* :mod:`.probe`: per-layer EER of a frozen encoder, training-free (``layersv probe``);
* :mod:`.layer_usage`: the layer weights / attention a trained backend learned (``layersv layers``).
"""

from __future__ import annotations

from .layer_usage import layer_usage
from .probe import probe_dataset

__all__ = ["layer_usage", "probe_dataset"]
