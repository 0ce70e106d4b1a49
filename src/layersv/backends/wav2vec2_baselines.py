"""wav2vec 2.0 speaker baselines shipped with the seeds' framework (§1.9).

* ``ExploreWV2`` (Fan et al., "Exploring wav2vec 2.0 on speaker verification and language
  identification", Interspeech 2021): only the **first transformer layer** is used — hidden state
  ``layer`` = 1 of ``hidden (batch, layers, frames, dim)`` (state 0 = the CNN/projection output;
  use ``layer=0`` if the frontend drops state 0) — then masked mean pooling → ``(B, D)``.  No
  parameters: all learning happens in the (fine-tuned) encoder; the seed also truncated the encoder
  to one layer (``num_layers 1``), which here is the frontend's ``layers`` setting.
* ``FinetuneWV2`` (Vaessen & van Leeuwen, "Fine-tuning wav2vec2 for speaker recognition", ICASSP
  2022), the seed's model: a constant all-ones CLS vector is prepended to the sequence after the
  feature projection, *inside* the pretrained wav2vec2 (the ``ssl`` frontend with ``cls_token: true``
  does this, before the positional convolution and the fine-tuned transformer); the embedding is the
  CLS frame (frame 0) of the last returned hidden state.  No parameters of its own.
* ``FinetuneWV2-CLSHead`` (layersv's earlier variant, kept under its own name): the frontend stays a
  black box; the backend prepends a CLS (``learned_cls``: a parameter initialised to ones) to hidden
  state ``layer`` and runs its own small transformer (``num_layers`` × ``num_heads``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import lengths_to_mask, masked_mean_std


def check_layer(layer: int, in_layers: int) -> None:
    if not -in_layers <= layer < in_layers:
        raise ValueError(f"layer {layer} out of range for {in_layers} hidden states")


class OneHiddenState(nn.Module):
    """A parameter-free backend reading hidden state ``layer`` of ``(B, L, T, D)``; E = D."""

    def __init__(self, in_layers: int, in_dim: int, layer: int):
        super().__init__()
        check_layer(layer, in_layers)
        self.in_layers, self.layer = in_layers, layer
        self.embedding_dim = in_dim

    def layer_weights(self) -> torch.Tensor:
        """One-hot on the used hidden state (nothing is learned over layers)."""
        w = torch.zeros(self.in_layers)
        w[self.layer] = 1.0
        return w


class ExploreWV2(OneHiddenState):
    def __init__(self, in_layers: int, in_dim: int, layer: int = 1):
        super().__init__(in_layers, in_dim, layer)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = hidden[:, self.layer].transpose(1, 2)
        return masked_mean_std(x, lengths_to_mask(lengths, x.shape[-1]))[0]


class FinetuneWV2(OneHiddenState):
    """The seed's FinetuneWV2 head: ``hidden (B, L, 1 + T, D)`` from an ``ssl`` frontend with
    ``cls_token`` → the CLS output ``hidden[:, layer, 0]`` ``(B, D)`` (``layer`` −1: the last state)."""

    def __init__(self, in_layers: int, in_dim: int, layer: int = -1):
        super().__init__(in_layers, in_dim, layer)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return hidden[:, self.layer, 0]


class FinetuneWV2CLSHead(nn.Module):
    def __init__(self, in_layers: int, in_dim: int, layer: int = 0, num_layers: int = 2, num_heads: int = 8,
                 ffn_dim: int = 1024, dropout: float = 0.1, learned_cls: bool = True):
        super().__init__()
        check_layer(layer, in_layers)
        if in_dim % num_heads:
            raise ValueError(f"in_dim {in_dim} is not divisible by num_heads {num_heads}")
        self.in_layers, self.layer = in_layers, layer
        cls = torch.ones(in_dim)
        if learned_cls:
            self.cls = nn.Parameter(cls)
        else:
            self.register_buffer("cls", cls)
        enc_layer = nn.TransformerEncoderLayer(in_dim, num_heads, ffn_dim, dropout, activation="gelu",
                                               batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(enc_layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(in_dim)
        self.embedding_dim = in_dim

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = hidden[:, self.layer]  # (B, T, D)
        x = torch.cat([self.cls.to(x.dtype).expand(x.shape[0], 1, -1), x], 1)
        pad = ~lengths_to_mask(lengths + 1, x.shape[1])
        y = self.transformer(x, src_key_padding_mask=pad)
        return self.norm(y[:, 0])

    def layer_weights(self) -> torch.Tensor:
        w = torch.zeros(self.in_layers)
        w[self.layer] = 1.0
        return w
