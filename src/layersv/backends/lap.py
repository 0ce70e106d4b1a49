"""LAP: Layer Attentive Pooling + a speaker network ("Rethinking Leveraging Pre-Trained Multi-Layer
Representations for Speaker Verification", Kim et al., Interspeech 2025; sadPororo/LAP).

``hidden (batch, layers, frames, dim)`` (all L+1 states including state 0) → Layer Attentive
Pooling (BN2d → Conv2d 1×1 D→D → ``lap_heads`` heads → per-head squeeze-excite over the layer axis
from channel mean/max → sigmoid scores per frame → max over layers → Conv1d D→``lap_dim`` → BN)
→ ``(B, lap_dim, T)`` → speaker network (astp, ecapa-tdnn, x-vector, or mhfa with its own key and
value LAP aggregators).  The layer weights vary per frame and head; ``layer_attention`` averages them.
"""

from __future__ import annotations

from .speaker_networks import AggregatedBackend


class LAP(AggregatedBackend):
    """Args: ``speaker_network`` (seed: astp), ``embedding_dim`` (0 = the seed's size for the network:
    192 astp/ecapa-tdnn, 512 x-vector, 256 mhfa), ``lap_dim`` (512), ``lap_heads``
    (16; must divide D), ``hidden_dim`` (astp frame projection, 0 = none), ``channels`` (ECAPA),
    ``mhfa_heads``/``mhfa_compression`` (MHFA), ``dropout`` (attention/score dropout 0.1),
    ``feature_norm`` (per-layer, per-dimension standardisation of the input first; not in the seed),
    ``tap`` (``embedding`` or ``pooled``: astp's pooled statistics at inference; not in the seed)."""

    def __init__(self, in_layers: int, in_dim: int, speaker_network: str = "astp", embedding_dim: int = 0,
                 lap_dim: int = 512, lap_heads: int = 16, hidden_dim: int = 0, channels: int = 512,
                 mhfa_heads: int = 64, mhfa_compression: int = 128, dropout: float = 0.1,
                 feature_norm: bool = False, tap: str = "embedding"):
        super().__init__(in_layers, in_dim, "lap", speaker_network, embedding_dim, hidden_dim, channels, False,
                         lap_dim, lap_heads, mhfa_heads, mhfa_compression, dropout, feature_norm, tap)
