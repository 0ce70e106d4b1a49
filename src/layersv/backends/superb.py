"""SUPERB weighted layer sum + a speaker network (Yang et al., "SUPERB", Interspeech 2021).

The baseline layer aggregation of LAP ("Rethinking Leveraging Pre-Trained Multi-Layer
Representations for Speaker Verification", Kim et al., Interspeech 2025): a softmax-weighted sum
over the encoder's hidden states ``(batch, layers, frames, dim)``, then one of
``SPEAKER_NETWORKS`` (astp, ecapa-tdnn, x-vector, mhfa).
"""

from __future__ import annotations

import torch

from .astp import ASTPNetwork
from .speaker_networks import SPEAKER_NETWORKS, AggregatedBackend

__all__ = ["SUPERB", "ASTPNetwork", "SPEAKER_NETWORKS"]


class SUPERB(AggregatedBackend):
    """SUPERB weighted sum over layers + speaker network.

    Args:
        in_layers: number of hidden states L of the input ``(B, L, T, D)``.
        in_dim: feature size D.
        speaker_network: key of ``SPEAKER_NETWORKS``.
        embedding_dim: output size E (0 = the seed's size for the network: 192 astp/ecapa-tdnn,
            512 x-vector, 256 mhfa).
        hidden_dim: frame projection of ``astp`` before pooling (0 = none, as the seed).
        channels: ECAPA channels (``ecapa-tdnn``).
        layer_norm: parameter-free layer norm of every hidden state before the sum (s3prl; the
            seed does not normalise — its recipe sets False).
        mhfa_heads, mhfa_compression: MHFA sizes (``mhfa``).
        feature_norm: standardise every hidden state per dimension first (mask-aware, running
            estimates; :class:`layersv.backends.layers.MaskedFeatureNorm`; not in the seed).
        tap: ``embedding`` or ``pooled`` (astp: inference returns the pooled statistics below the
            projection, ``embedding_dim`` becomes 2·hidden_dim; ``speaker_networks.TAPS``; not in the seed).
    Returns ``(B, E)`` embeddings (not normalised; the model normalises at eval time).
    """

    def __init__(self, in_layers: int, in_dim: int, speaker_network: str = "astp", embedding_dim: int = 0,
                 hidden_dim: int = 0, channels: int = 512, layer_norm: bool = True, mhfa_heads: int = 64,
                 mhfa_compression: int = 128, dropout: float = 0.1, feature_norm: bool = False,
                 tap: str = "embedding"):
        super().__init__(in_layers, in_dim, "superb", speaker_network, embedding_dim, hidden_dim, channels,
                         layer_norm, 512, 16, mhfa_heads, mhfa_compression, dropout, feature_norm, tap)

    def layer_weights(self) -> torch.Tensor:
        """``(L,)`` softmax layer weights (the value aggregator's with ``mhfa``)."""
        return self._aggregator().layer_weights()
