"""layersv: speaker verification on the multi-layer features of pretrained speech encoders.

The package's public names, re-exported from where they live (see docs/architecture.md):
``load_model`` / ``SpeakerEncoder`` (:mod:`layersv.model`), ``fit`` / ``evaluate_run`` / ``verify``
(:mod:`layersv.runs`), ``embed_file`` / ``Embeddings`` (:mod:`layersv.embed`).
"""

from __future__ import annotations

__version__ = "0.1.0"

from .embed import Embeddings, embed_file
from .model import SpeakerEncoder, load_model
from .runs import evaluate_run, fit, verify

__all__ = ["Embeddings", "SpeakerEncoder", "embed_file", "evaluate_run", "fit", "load_model", "verify",
           "__version__"]
