"""Training heads: speaker classifiers and their losses.  Never part of an exported model.

* ``softmax``: linear classifier + cross-entropy.
* ``am``: additive-margin softmax / CosFace (Wang et al. 2018): s·(cos θ_y − m).
* ``aam``: additive angular margin / ArcFace (Deng et al. 2019): s·cos(θ_y + m), with the
  easy-margin fallback or the usual linear extension beyond θ + m > π.
* ``aam-multihead``: UniPool's multi-head AAM: the embedding is split into ``heads`` sub-vectors,
  each with its own ArcFace classifier; the cross-entropy is averaged over heads.
* ``aam-subcenter``: WeSpeaker/LAP's sub-center ArcFace with inter-top-k penalty (K sub-centres
  per class, the top-k non-target classes get the logit cos(θ − m')).

``margin`` and ``scale`` are plain attributes, so a schedule can change them while training.
Inputs are embeddings ``(B, E)`` and integer labels ``(B,)``; ``forward`` returns
``(loss, logits)``.  Cosines are computed in float32 even under autocast, and
``sqrt(1 − cos²)`` is clamped (the LAP seed's AAM could produce NaN here).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def safe_sin(cos: torch.Tensor) -> torch.Tensor:
    """sin θ from cos θ with the argument of the square root clamped (finite value and gradient)."""
    return torch.sqrt((1.0 - cos * cos).clamp(1e-7, 1.0))


def arc_target(cos: torch.Tensor, m: float, easy_margin: bool = False) -> torch.Tensor:
    """ArcFace target cosine cos(θ + m), with the easy-margin or linear fallback (float32 input)."""
    phi = cos * math.cos(m) - safe_sin(cos) * math.sin(m)  # cos(θ + m)
    if easy_margin:
        return torch.where(cos > 0, phi, cos)
    th, mm = math.cos(math.pi - m), math.sin(math.pi - m) * m
    return torch.where(cos > th, phi, cos - mm)


class SoftmaxHead(nn.Module):
    """Linear classifier + cross-entropy (``bias=False``: the X-vector seed's bias-free classifier)."""

    def __init__(self, embedding_dim: int, num_classes: int, bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(embedding_dim, num_classes, bias=bias)
        self.margin = 0.0
        self.scale = 1.0

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device_type=emb.device.type, enabled=False):  # float32 logits under autocast
            logits = self.fc(emb.float())
            return F.cross_entropy(logits, labels), logits


class _CosineHead(nn.Module):
    def __init__(self, embedding_dim: int, num_classes: int, margin: float, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight)
        self.margin = float(margin)
        self.scale = float(scale)

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """``(B, E)`` → ``(B, num_classes)`` cosine similarities in float32."""
        with torch.autocast(device_type=emb.device.type, enabled=False):
            return F.linear(F.normalize(emb.float(), dim=-1), F.normalize(self.weight.float(), dim=-1))


class AMSoftmaxHead(_CosineHead):
    """Additive-margin softmax (CosFace): logits s·(cos θ − m·onehot)."""

    def __init__(self, embedding_dim: int, num_classes: int, margin: float = 0.2, scale: float = 30.0):
        super().__init__(embedding_dim, num_classes, margin, scale)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = self.cosine(emb)
        onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        logits = self.scale * (cos - self.margin * onehot)
        return F.cross_entropy(logits, labels), logits


class AAMSoftmaxHead(_CosineHead):
    """Additive angular margin softmax (ArcFace): the target logit is s·cos(θ_y + m).

    Where θ_y + m would exceed π, cos(θ_y + m) stops decreasing in θ_y.  The default
    (``easy_margin=False``) then switches to the linear extension ``cos θ − m·sin(m)``
    (for θ_y > π − m); ``easy_margin=True`` applies the margin only where cos θ_y > 0.
    """

    def __init__(self, embedding_dim: int, num_classes: int, margin: float = 0.2, scale: float = 30.0,
                 easy_margin: bool = False):
        super().__init__(embedding_dim, num_classes, margin, scale)
        self.easy_margin = easy_margin

    def target_logit(self, cos: torch.Tensor) -> torch.Tensor:
        return arc_target(cos, self.margin, self.easy_margin)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = self.cosine(emb)
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        logits = self.scale * torch.where(onehot, self.target_logit(cos), cos)
        return F.cross_entropy(logits, labels), logits


class MultiHeadAAMHead(nn.Module):
    """UniPool's multi-head AAM-softmax: ``heads`` ArcFace classifiers on E/heads-sized sub-vectors.

    Weight ``(heads, E/heads, C)``, Xavier-uniform over the whole 3-D tensor as the seed
    (bound √(6 / (C·(E/h + h)))).  Loss = mean over heads of the cross-entropy; the
    returned logits are the mean over heads.  ``heads=1`` is plain ArcFace (same logits as ``aam``).
    """

    def __init__(self, embedding_dim: int, num_classes: int, margin: float = 0.2, scale: float = 30.0,
                 heads: int = 1, easy_margin: bool = False):
        super().__init__()
        if embedding_dim % heads:
            raise ValueError(f"embedding_dim {embedding_dim} is not divisible by heads {heads}")
        self.heads = heads
        self.weight = nn.Parameter(torch.empty(heads, embedding_dim // heads, num_classes))
        nn.init.xavier_uniform_(self.weight)  # the seed's 3-D Xavier: fan_in = E/h·C, fan_out = h·C
        self.margin, self.scale, self.easy_margin = float(margin), float(scale), easy_margin

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """``(B, E)`` → ``(heads, B, C)`` float32 cosines."""
        with torch.autocast(device_type=emb.device.type, enabled=False):
            x = F.normalize(emb.float().view(emb.shape[0], self.heads, -1), dim=-1)  # (B, h, E/h)
            w = F.normalize(self.weight.float(), dim=1)  # (h, E/h, C)
            return torch.einsum("bhe,hec->hbc", x, w)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = self.cosine(emb)
        onehot = F.one_hot(labels, cos.shape[-1]).bool()[None]
        logits = self.scale * torch.where(onehot, arc_target(cos, self.margin, self.easy_margin), cos)
        loss = torch.stack([F.cross_entropy(lg, labels) for lg in logits]).mean()
        return loss, logits.mean(0)


class SubCenterAAMHead(nn.Module):
    """Sub-center ArcFace with inter-top-k penalty (Deng et al. ECCV 2020; Zhao et al. 2022; WeSpeaker,
    as modified in the LAP seed).

    cos_{i,c} = max_k ⟨x̂_i, ŵ_{k,c}⟩ over ``subcenters`` centres per class; the target gets the
    ArcFace logit; the ``topk`` non-target classes with the highest cosine get cos(θ − m') =
    cos θ·cos m' + sin θ·sin m' (harder negatives), m' = ``topk_margin`` · margin / initial margin
    (so it follows a margin schedule; 0 when margin ≤ 0.001); the rest keep cos θ; all × scale.
    Weight ``(K, C, E)``, initialised as the seed's Xavier on its ``(K, E, C)`` tensor
    (bound √(6 / (C·(E + K))), about 14× smaller than a per-class 2-D Xavier for C = 17,982).
    Fix of the seed: sin θ is computed with a clamped square root (the seed could produce NaN).
    """

    def __init__(self, embedding_dim: int, num_classes: int, margin: float = 0.2, scale: float = 30.0,
                 subcenters: int = 3, topk: int = 5, topk_margin: float = 0.06, easy_margin: bool = False):
        super().__init__()
        self.subcenters, self.topk, self.topk_margin = subcenters, topk, float(topk_margin)
        self.weight = nn.Parameter(torch.empty(subcenters, num_classes, embedding_dim))
        # the seed's Xavier on its (K, E, C) weight: fan_in = E·C, fan_out = K·C
        bound = math.sqrt(6.0 / (embedding_dim * num_classes + subcenters * num_classes))
        nn.init.uniform_(self.weight, -bound, bound)
        self.margin, self.scale, self.easy_margin = float(margin), float(scale), easy_margin
        self.initial_margin = float(margin)

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """``(B, E)`` → ``(B, C)`` float32: the best sub-centre's cosine per class."""
        with torch.autocast(device_type=emb.device.type, enabled=False):
            x = F.normalize(emb.float(), dim=-1)
            w = F.normalize(self.weight.float(), dim=-1)  # (K, C, E)
            return torch.einsum("be,kce->bkc", x, w).amax(1)

    def current_topk_margin(self) -> float:
        if self.margin <= 0.001 or self.initial_margin <= 0:
            return 0.0
        return self.topk_margin * self.margin / self.initial_margin

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = self.cosine(emb)
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        logits = torch.where(onehot, arc_target(cos, self.margin, self.easy_margin), cos)
        mk = self.current_topk_margin()
        k = min(self.topk, cos.shape[1] - 1)
        if mk > 0 and k > 0:
            idx = cos.masked_fill(onehot, float("-inf")).topk(k, dim=1).indices
            hard = torch.zeros_like(onehot).scatter_(1, idx, True)
            penal = cos * math.cos(mk) + safe_sin(cos) * math.sin(mk)  # cos(θ − m')
            logits = torch.where(hard, penal, logits)
        logits = self.scale * logits
        return F.cross_entropy(logits, labels), logits


HEADS: dict[str, type[nn.Module]] = {
    "softmax": SoftmaxHead,
    "am": AMSoftmaxHead,
    "aam": AAMSoftmaxHead,
    "aam-multihead": MultiHeadAAMHead,
    "aam-subcenter": SubCenterAAMHead,
}


def get_head_class(name: str) -> type[nn.Module]:
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; available: {', '.join(sorted(HEADS))}")
    return HEADS[name]


def build_head(name: str, embedding_dim: int, num_classes: int, **args) -> nn.Module:
    return get_head_class(name)(embedding_dim=embedding_dim, num_classes=num_classes, **args)


class MarginSchedule:
    """Ramp a head's margin from ``start`` to ``end`` between steps ``begin`` and ``begin + steps``.

    ``kind``: ``linear``, ``log`` (fast at first: log1p(9x)/log 10), ``exp`` (slow at first:
    (10^x − 1)/9), ``lap-log`` (the LAP seed's curve: log(linspace(0.005, 1)) min-max rescaled),
    ``cos`` (half-cosine ease-in-out (1 − cos πx)/2; the LAP seed offers a "cos" curve, off by default,
    whose formula seeds-spec does not give) or ``none`` (``end`` throughout).  ``from_epochs`` builds
    the same ramp counted in epochs.
    """

    KINDS = ("none", "linear", "log", "exp", "lap-log", "cos")

    @classmethod
    def from_epochs(cls, end: float, start: float = 0.0, begin_epoch: int = 0, epochs: int = 0,
                    steps_per_epoch: int = 1, kind: str = "linear") -> "MarginSchedule":
        """Ramp over ``epochs`` epochs starting at ``begin_epoch`` (LAP's margin_up_start/margin_up_epochs)."""
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        return cls(end, start, begin_epoch * steps_per_epoch, epochs * steps_per_epoch, kind)

    def __init__(self, end: float, start: float = 0.0, begin: int = 0, steps: int = 0, kind: str = "linear"):
        if kind not in self.KINDS:
            raise ValueError(f"unknown margin schedule {kind!r}; valid: {', '.join(self.KINDS)}")
        self.end, self.start, self.begin, self.steps, self.kind = end, start, begin, steps, kind

    def __call__(self, step: int) -> float:
        if self.kind == "none":
            return self.end
        if step < self.begin:
            return self.start
        if self.steps <= 0 or step >= self.begin + self.steps:
            return self.end
        x = (step - self.begin) / self.steps  # progress in [0, 1)
        if self.kind == "log":
            x = math.log1p(9 * x) / math.log(10)
        elif self.kind == "exp":
            x = (10**x - 1) / 9
        elif self.kind == "lap-log":
            x = 1.0 - math.log(0.005 + 0.995 * x) / math.log(0.005)
        elif self.kind == "cos":
            x = 0.5 * (1.0 - math.cos(math.pi * x))
        return self.start + (self.end - self.start) * x
