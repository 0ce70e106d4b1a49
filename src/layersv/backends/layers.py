"""Shared building blocks of the backends: masks, mask-aware statistics and pooling, layer sums.

Shapes: ``hidden`` is ``(batch, layers, frames, dim)``; frame-level tensors inside the
frame networks are ``(batch, channels, frames)``; ``lengths`` holds valid frames per item.
Every reduction over time here ignores padded frames, so a padded batch gives the same
result as one item at a time.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..utils import lengths_to_mask


def masked_mean_std(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) standard deviation over the last axis of ``x (B, C, T)``.

    ``mask (B, T)`` selects valid frames.  Returns two ``(B, C)`` tensors.  The variance is
    clamped before the square root (no NaN gradient at zero variance).
    """
    m = mask[:, None, :].to(x.dtype)
    n = m.sum(-1).clamp_min(1.0)
    mean = (x * m).sum(-1) / n
    var = ((x - mean[..., None]) ** 2 * m).sum(-1) / n
    return mean, var.clamp_min(eps).sqrt()


class MaskedFeatureNorm(nn.Module):
    """Per-layer, per-dimension standardisation of the hidden states, mask-aware (a BatchNorm over
    the valid frames of the batch, no affine parameters).

    ``hidden (B, L, T, D)`` + ``lengths (B,)`` → same shape, each (layer, dimension) centred and
    scaled to unit variance: with the batch's valid frames while training (the running estimates
    are updated with ``momentum``), with the running estimates in eval mode -- so a padded batch
    equals one item at a time at inference. Frozen encoders' hidden states have dimensions whose
    scale is orders of magnitude above the rest (Whisper's, WavLM's), and their layers differ in
    scale: without this a backend's first linear layer sees an ill-conditioned input (measured on
    real speech with frozen Whisper-base: recipes/speechocean762/README.md).
    """

    def __init__(self, num_layers: int, dim: int, momentum: float = 0.05, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(num_layers, dim))
        self.register_buffer("running_var", torch.ones(num_layers, dim))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = hidden.float()
        if self.training:
            m = lengths_to_mask(lengths, x.shape[2])[:, None, :, None].to(x.dtype)  # (B, 1, T, 1)
            n = m.sum((0, 2)).clamp_min(1.0)  # (1, 1)
            mean = (x * m).sum((0, 2)) / n  # (L, D)
            var = ((x - mean[None, :, None]) ** 2 * m).sum((0, 2)) / n
            with torch.no_grad():
                first = bool(self.num_batches_tracked == 0)
                mom = 1.0 if first else self.momentum
                self.running_mean.lerp_(mean.detach(), mom)
                self.running_var.lerp_(var.detach(), mom)
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)
        return out.to(hidden.dtype)


class StatsPool(nn.Module):
    """Masked mean + std pooling: ``(B, C, T)`` → ``(B, 2C)``."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mean, std = masked_mean_std(x, lengths_to_mask(lengths, x.shape[-1]))
        return torch.cat([mean, std], dim=-1)


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (Okabe et al., Interspeech 2018), mask-aware.

    Args:
        in_dim: channels C of the input ``(B, C, T)``.
        bottleneck: hidden size of the attention network.
        global_context: concatenate the utterance mean/std to every frame before the
            attention (the ECAPA-TDNN variant, Desplanques et al. 2020).
    Returns ``(B, 2C)``: attention-weighted mean and standard deviation.
    """

    def __init__(self, in_dim: int, bottleneck: int = 128, global_context: bool = False):
        super().__init__()
        self.global_context = global_context
        att_in = in_dim * 3 if global_context else in_dim
        self.attention = nn.Sequential(
            nn.Conv1d(att_in, bottleneck, 1), nn.Tanh(), nn.Conv1d(bottleneck, in_dim, 1)
        )
        self.out_dim = 2 * in_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(lengths, x.shape[-1])  # (B, T)
        att_in = x
        if self.global_context:
            mean, std = masked_mean_std(x, mask)
            t = x.shape[-1]
            att_in = torch.cat([x, mean[..., None].expand(-1, -1, t), std[..., None].expand(-1, -1, t)], 1)
        logits = self.attention(att_in).float()  # (B, C, T)
        logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
        w = torch.softmax(logits, dim=-1).to(x.dtype)  # (B, C, T), zero on padding
        mean = (w * x).sum(-1)
        var = (w * x * x).sum(-1) - mean * mean
        return torch.cat([mean, var.clamp_min(1e-5).sqrt()], dim=-1)


class LayerWeightedSum(nn.Module):
    """SUPERB weighted sum (Yang et al., Interspeech 2021): softmax(w) · hidden over layers.

    ``(B, L, T, D)`` → ``(B, T, D)``.  ``layer_norm`` applies a parameter-free layer norm to
    each layer first (as s3prl does), so layers with large norms do not dominate.
    """

    def __init__(self, num_layers: int, layer_norm: bool = True):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_layers))
        self.layer_norm = layer_norm

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.layer_norm:
            hidden = F.layer_norm(hidden, (int(hidden.shape[-1]),))  # static D: ONNX-exportable
        w = torch.softmax(self.weights, dim=0).to(hidden.dtype)
        return torch.einsum("l,bltd->btd", w, hidden)

    def layer_weights(self) -> torch.Tensor:
        """``(L,)`` normalised layer weights (sum to 1)."""
        return torch.softmax(self.weights.detach(), dim=0)


def mask_time(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the padded frames of ``x`` (``(B, C, T)`` or ``(B, C, L, T)``); ``mask (B, T)``.

    Applied before every convolution over time, so a padded batch sees the same zeros at an
    utterance's end as a single item sees from the convolution's own zero padding.
    """
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return x * mask.view(shape).to(x.dtype)


def masked_max(x: torch.Tensor, mask: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Maximum of ``x`` over ``dims`` (which include the time axis), ignoring padded frames."""
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return x.masked_fill(~mask.view(shape), float("-inf")).amax(dim=dims, keepdim=True)


def masked_avg(x: torch.Tensor, mask: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Mean of ``x`` over ``dims`` (which include the time axis), ignoring padded frames."""
    m = mask.view((x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)).to(x.dtype)
    return (x * m).sum(dims, keepdim=True) / (m.expand_as(x).sum(dims, keepdim=True).clamp_min(1.0))


class ContextASP(nn.Module):
    """The seeds' attentive statistics pooling with global context (ECAPA style; UniPool §2.2-4, LAP astp).

    ``(B, C, T)`` + lengths → ``(B, 2C)``: concat [x, mean_T, std_T] (3C) → Conv1d 3C→bottleneck
    → ReLU → BN → Conv1d bottleneck→C → masked softmax over T → attentive mean and std
    (variance clamped at 1e-4).  ``attn_dropout`` drops attention weights after the softmax
    (UniPool/L-TDNN); ``score_dropout`` removes a random fraction of frames from the softmax while
    training (LAP's "score dropout"); ``tanh`` adds a Tanh after the BN (TaoRuijie's ECAPA).
    Fix of the seeds: the context statistics are the masked population std in training *and*
    eval (UniPool used the unbiased ``torch.std`` at eval).
    """

    def __init__(self, in_dim: int, bottleneck: int, attn_dropout: float = 0.0, score_dropout: float = 0.0,
                 tanh: bool = False):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(3 * in_dim, bottleneck, 1), nn.ReLU(), nn.BatchNorm1d(bottleneck),
            nn.Tanh() if tanh else nn.Identity(), nn.Conv1d(bottleneck, in_dim, 1),
        )
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.score_dropout = score_dropout
        self.out_dim = 2 * in_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(lengths, x.shape[-1])
        x = mask_time(x, mask)
        mean, std = masked_mean_std(x, mask)
        t = x.shape[-1]
        ctx = torch.cat([x, mean[..., None].expand(-1, -1, t), std[..., None].expand(-1, -1, t)], 1)
        keep = mask
        if self.training and self.score_dropout > 0:
            drop = torch.rand(mask.shape, device=mask.device) < self.score_dropout
            keep = mask & ~drop
            keep = torch.where(keep.any(-1, keepdim=True), keep, mask)  # never drop every frame
        logits = self.attention(ctx).float().masked_fill(~keep[:, None, :], float("-inf"))
        w = self.attn_dropout(torch.softmax(logits, dim=-1)).to(x.dtype)
        mu = (w * x).sum(-1)
        var = (w * x * x).sum(-1) - mu * mu
        return torch.cat([mu, var.clamp_min(1e-4).sqrt()], dim=-1)


class StaticLayers(nn.Module):
    """Layer choice for the single-layer baselines: the last hidden state, or a SUPERB weighted sum.

    ``(B, L, T, D)`` → ``(B, T, D)``.  With ``layer_sum`` and L > 1 this is ``LayerWeightedSum``
    (trainable weights); otherwise hidden state ``layer`` (default −1, the last) is taken.
    """

    def __init__(self, num_layers: int, layer_sum: bool, layer: int = -1, layer_norm: bool = False):
        super().__init__()
        self.num_layers, self.layer = num_layers, layer
        self.sum = LayerWeightedSum(num_layers, layer_norm) if (layer_sum and num_layers > 1) else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.sum(hidden) if self.sum is not None else hidden[:, self.layer]

    def layer_weights(self) -> torch.Tensor:
        if self.sum is not None:
            return self.sum.layer_weights()
        w = torch.zeros(self.num_layers)
        w[self.layer] = 1.0
        return w


def seed_init(module: nn.Module) -> None:
    """LAP's backend init: Xavier-uniform for every ``*weight*`` with ≥ 2 dims, zeros for ``*bias*``.

    The per-head squeeze/expand weights of Layer Attentive Pooling (``w1 (heads, L/2, L)``,
    ``w2 (heads, L, L/2)``) are initialised per head as the 2-D layers they are (Xavier on each
    head's matrix), and their biases ``b1``/``b2`` zeroed; seeds-spec does not give the seed's tensor
    layout of these weights, so their 2-D fans are used.
    """
    for name, p in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf.endswith("weight") and p.dim() >= 2:
            nn.init.xavier_uniform_(p)
        elif leaf in ("w1", "w2") and p.dim() == 3:
            for h in range(p.shape[0]):
                nn.init.xavier_uniform_(p.data[h])
        elif leaf.endswith("bias") or leaf in ("b1", "b2"):
            nn.init.zeros_(p)


def span_out(hidden: torch.Tensor, lengths: torch.Tensor, prob: float = 0.3, start_prob: float = 0.05,
             span: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """UniPool's span-out (training-time frame dropping): for a ``prob`` share of the items, every valid
    frame starts a dropped span of ``span`` frames with probability ``start_prob``; the kept frames are
    compacted to the front.  ``hidden (B, L, T, D)``, ``lengths (B,)`` → same shapes, new lengths
    (at least one frame is kept).  Uses the global torch RNG.
    """
    B, _, T, _ = hidden.shape
    dev = hidden.device
    valid = lengths_to_mask(lengths, T)
    starts = (torch.rand(B, T, device=dev) < start_prob) & (torch.rand(B, 1, device=dev) < prob) & valid
    drop = torch.zeros_like(valid)
    for k in range(span):
        drop[:, k:] |= starts[:, : T - k]
    keep = valid & ~drop
    keep[:, 0] |= keep.sum(1) == 0  # never drop everything
    new_len = keep.sum(1)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept frames first, in order
    out = hidden.gather(2, order[:, None, :, None].expand(-1, hidden.shape[1], -1, hidden.shape[3]))
    out = out * lengths_to_mask(new_len, T)[:, None, :, None]
    return out, new_len
