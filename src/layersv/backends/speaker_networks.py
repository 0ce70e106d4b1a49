"""Layer aggregation + speaker network composition (LAP paper, Kim et al., Interspeech 2025, §4.4).

A backend = aggregator over the hidden states ``(B, L, T, D)`` → frames ``(B, C, T)`` → speaker
network → ``(B, E)``.  ``SPEAKER_NETWORKS`` (plain dict, seed names): ``astp`` (LAP's light
ASTP), ``ecapa-tdnn`` (WeSpeaker-style ECAPA, channels 512), ``x-vector`` (TDNN).  The embedding
size ``embedding_dim = 0`` means the size the seed hard-codes for that network (``SEED_EMBEDDING``:
192 for astp / ecapa-tdnn, 512 for x-vector, 256 for mhfa).  ``mhfa`` is
special: it needs its own key and value aggregators, so it replaces the whole composition with
``MHFA`` (mhfa.py).  The seed's initialisation (Xavier for every ≥2-D ``weight``, zero biases) is
applied to the whole backend.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from .astp import ASTPNetwork
from .ecapa import ECAPANetwork
from .layer_attention import make_aggregator
from .layers import MaskedFeatureNorm, seed_init
from .mhfa import MHFA
from .xvector import XVectorNetwork

SPEAKER_NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "astp": lambda in_dim, emb, hidden_dim, channels, dropout: ASTPNetwork(in_dim, emb, hidden_dim, dropout),
    "ecapa-tdnn": lambda in_dim, emb, hidden_dim, channels, dropout: ECAPANetwork(in_dim, emb, channels, "wespeaker"),
    "x-vector": lambda in_dim, emb, hidden_dim, channels, dropout: XVectorNetwork(in_dim, emb),
    "mhfa": MHFA,  # handled by AggregatedBackend (two aggregators)
}
# Where inference takes the embedding: ``embedding`` (the projection the head is trained on) or
# ``pooled`` (astp only: the batch-normalised pooled statistics below it, 2C' dimensions, as Kaldi's
# x-vector takes its embedding below the classifier's last layers; training is unchanged). With few
# training speakers the projection fits them closely, and LDA + PLDA on the pooled layer generalises
# better to new speakers (recipes/speechocean762/README.md).
TAPS = ("embedding", "pooled")
SEED_EMBEDDING = {"astp": 192, "ecapa-tdnn": 192, "x-vector": 512, "mhfa": 256}


class AggregatedBackend(nn.Module):
    def __init__(self, in_layers: int, in_dim: int, aggregation: str, speaker_network: str, embedding_dim: int,
                 hidden_dim: int, channels: int, layer_norm: bool, lap_dim: int, lap_heads: int, mhfa_heads: int,
                 mhfa_compression: int, dropout: float, feature_norm: bool = False, tap: str = "embedding"):
        super().__init__()
        if tap not in TAPS:
            raise ValueError(f"unknown tap {tap!r}; valid: {', '.join(TAPS)}")
        if tap == "pooled" and speaker_network != "astp":
            raise ValueError(f"tap: pooled needs speaker_network astp (got {speaker_network!r})")
        self.feature_norm = MaskedFeatureNorm(in_layers, in_dim) if feature_norm else None
        if speaker_network not in SPEAKER_NETWORKS:
            raise ValueError(f"unknown speaker_network {speaker_network!r}; valid: {', '.join(SPEAKER_NETWORKS)}")
        self.speaker_network = speaker_network
        embedding_dim = embedding_dim or SEED_EMBEDDING[speaker_network]
        if speaker_network == "mhfa":
            self.mhfa = MHFA(in_layers, in_dim, aggregation, embedding_dim, mhfa_heads, mhfa_compression, layer_norm,
                             lap_dim, lap_heads, dropout)
        else:
            self.aggregate = make_aggregator(aggregation, in_layers, in_dim, layer_norm, lap_dim, lap_heads, dropout)
            self.network = SPEAKER_NETWORKS[speaker_network](self.aggregate.out_dim, embedding_dim, hidden_dim,
                                                             channels, dropout)
        seed_init(self)
        self.tap = tap
        self.head_dim = embedding_dim  # what the training head sees
        self.embedding_dim = self.network.pooled_dim if tap == "pooled" else embedding_dim  # what inference returns

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.feature_norm is not None:
            hidden = self.feature_norm(hidden, lengths)
        if self.speaker_network == "mhfa":
            return self.mhfa(hidden, lengths)
        if self.tap == "pooled" and not self.training:
            return self.network.pooled(self.aggregate(hidden), lengths)
        return self.network(self.aggregate(hidden), lengths)

    def _aggregator(self) -> nn.Module:
        return self.mhfa.value_aggregate if self.speaker_network == "mhfa" else self.aggregate

    def layer_attention(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` per-layer weights (static for SUPERB, frame-averaged attention for LAP); with
        ``mhfa``, those of the value aggregator."""
        with torch.no_grad():
            self(hidden, lengths)
        return self._aggregator().attention_summary(lengths)
