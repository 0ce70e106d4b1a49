"""Training heads: speaker classifiers and their losses.  Never part of an exported model.

* ``softmax``: linear classifier + cross-entropy.
* ``am``: additive-margin softmax / CosFace (Wang et al. 2018): s·(cos θ_y − m).
* ``aam``: additive angular margin / ArcFace (Deng et al. 2019): s·cos(θ_y + m), with the
  easy-margin fallback or the usual linear extension beyond θ + m > π.

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


class SoftmaxHead(nn.Module):
    """Linear classifier + cross-entropy."""

    def __init__(self, embedding_dim: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(embedding_dim, num_classes)
        self.margin = 0.0
        self.scale = 1.0

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
        m = self.margin
        sin = torch.sqrt((1.0 - cos * cos).clamp(1e-7, 1.0))
        phi = cos * math.cos(m) - sin * math.sin(m)  # cos(θ + m)
        if self.easy_margin:
            return torch.where(cos > 0, phi, cos)
        th, mm = math.cos(math.pi - m), math.sin(math.pi - m) * m
        return torch.where(cos > th, phi, cos - mm)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = self.cosine(emb)
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        logits = self.scale * torch.where(onehot, self.target_logit(cos), cos)
        return F.cross_entropy(logits, labels), logits


HEADS: dict[str, type[nn.Module]] = {
    "softmax": SoftmaxHead,
    "am": AMSoftmaxHead,
    "aam": AAMSoftmaxHead,
}


def get_head_class(name: str) -> type[nn.Module]:
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; available: {', '.join(sorted(HEADS))}")
    return HEADS[name]


def build_head(name: str, embedding_dim: int, num_classes: int, **args) -> nn.Module:
    return get_head_class(name)(embedding_dim=embedding_dim, num_classes=num_classes, **args)


class MarginSchedule:
    """Ramp a head's margin from ``start`` to ``end`` between steps ``begin`` and ``begin + steps``.

    ``kind``: ``linear``, ``log`` (fast at first) or ``exp`` (slow at first), as WeSpeaker's
    margin scheduler and LAP's margin ramp; ``none`` keeps ``end`` throughout.
    """

    KINDS = ("none", "linear", "log", "exp")

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
        return self.start + (self.end - self.start) * x
