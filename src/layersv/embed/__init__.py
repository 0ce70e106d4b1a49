"""The one road to embeddings: every way of turning audio (or cached hidden states) into unit-norm vectors.

* :mod:`.batches`: :class:`Embeddings` (the container all roads return) and
  :func:`extract_embeddings`, full utterances of a dataset folder in length-bucketed batches
  (sharded over ranks under torchrun);
* :mod:`.run_cache`: :func:`run_embeddings`, a run's evaluation embeddings (full utterances or the
  mean of N fixed crops) cached in ``RUN/embeddings/`` with a fingerprint of the model;
* :mod:`.hidden`: :func:`hidden_state_embeddings`, a backend over a frozen encoder's feature cache;
* :mod:`.files`: :func:`embed_waveform` / :func:`embed_file` / :func:`embed_files`, waveforms and audio
  files of any length (overlapping windows), for ``layersv embed``, ``verify`` and the speaker store.

:class:`layersv.model.SpeakerEncoder` stays a pure ``nn.Module``: it never reads files.
"""

from __future__ import annotations

from .batches import Embeddings, extract_embeddings
from .files import (FileEmbedding, embed_file, embed_file_full, embed_files, embed_for_scoring, embed_waveform,
                    expand_inputs, windows)
from .hidden import hidden_state_embeddings
from .run_cache import crop_starts, extract_crop_embeddings, run_embeddings

__all__ = ["Embeddings", "FileEmbedding", "crop_starts", "embed_file", "embed_file_full", "embed_files",
           "embed_for_scoring", "embed_waveform", "expand_inputs", "extract_crop_embeddings", "extract_embeddings",
           "hidden_state_embeddings", "run_embeddings", "windows"]
