"""Heads: golden logits on hand-made 2-D examples, margin 0 = plain softmax, autocast safety, schedules."""

import math

import pytest
import torch
import torch.nn.functional as F

from layersv.heads import (HEADS, AAMSoftmaxHead, AMSoftmaxHead, MarginSchedule, MultiHeadAAMHead, SoftmaxHead,
                           SubCenterAAMHead, build_head)


pytestmark = pytest.mark.usefixtures("one_thread")


def unit(deg):
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


# class 0 at 0°, class 1 at 90°; the embedding at 60° is 60° from class 0 and 30° from class 1
W2 = torch.tensor([unit(0), unit(90)])
EMB60 = torch.tensor([unit(60)])
Y0 = torch.tensor([0])
M = math.pi / 6  # 30°: cos(60° + 30°) = 0


def ce(logits, y=0):
    return -logits[y] + math.log(sum(math.exp(v) for v in logits))


def test_softmax_golden():
    h = SoftmaxHead(2, 2)
    with torch.no_grad():
        h.fc.weight.copy_(torch.eye(2))
        h.fc.bias.zero_()
    loss, logits = h(torch.tensor([[3.0, 4.0]]), Y0)
    assert logits.tolist() == [[3.0, 4.0]]
    assert loss.item() == pytest.approx(math.log(1 + math.e), abs=1e-6)


def test_am_golden():
    h = AMSoftmaxHead(2, 2, margin=0.2, scale=10.0)
    h.weight.data.copy_(W2)
    loss, logits = h(EMB60, Y0)
    torch.testing.assert_close(logits, torch.tensor([[10 * (0.5 - 0.2), 10 * math.sqrt(3) / 2]]))
    assert loss.item() == pytest.approx(ce([3.0, 5 * math.sqrt(3)]), abs=1e-5)


def test_aam_golden_and_fallbacks():
    h = AAMSoftmaxHead(2, 2, margin=M, scale=10.0)
    h.weight.data.copy_(W2)
    loss, logits = h(EMB60, Y0)
    torch.testing.assert_close(logits, torch.tensor([[0.0, 5 * math.sqrt(3)]]), atol=1e-5, rtol=0)
    assert loss.item() == pytest.approx(ce([0.0, 5 * math.sqrt(3)]), abs=1e-5)
    # θ = 160° > π − m: linear fallback cos θ − m·sin(m); easy margin keeps cos θ (cos θ < 0)
    emb = torch.tensor([unit(160)])
    c = math.cos(math.radians(160))
    _, lg = h(emb, Y0)
    assert lg[0, 0].item() == pytest.approx(10 * (c - M * math.sin(M)), abs=1e-4)
    h.easy_margin = True
    _, lg = h(emb, Y0)
    assert lg[0, 0].item() == pytest.approx(10 * c, abs=1e-4)


def test_multihead_aam_golden():
    h = MultiHeadAAMHead(4, 2, margin=M, scale=10.0, heads=2)
    h.weight.data.copy_(torch.stack([torch.eye(2), torch.eye(2)]))  # (heads, E/h, C): class c = axis c
    emb = torch.tensor([unit(60) + unit(20)])  # head 0 at 60°, head 1 at 20°
    loss, logits = h(emb, Y0)
    head0 = [0.0, 10 * math.cos(math.radians(30))]  # target cos 90° = 0
    head1 = [10 * math.cos(math.radians(50)), 10 * math.cos(math.radians(70))]  # target cos(20° + 30°)
    torch.testing.assert_close(logits, torch.tensor([[(a + b) / 2 for a, b in zip(head0, head1)]]), atol=1e-5,
                               rtol=0)
    assert loss.item() == pytest.approx((ce(head0) + ce(head1)) / 2, abs=1e-5)


def test_subcenter_intertopk_golden():
    h = SubCenterAAMHead(2, 3, margin=M, scale=10.0, subcenters=2, topk=1, topk_margin=0.1)
    centres = [[0, 180], [90, 270], [120, 300]]  # per class, two sub-centres (degrees)
    h.weight.data.copy_(torch.tensor([[unit(centres[c][k]) for c in range(3)] for k in range(2)]))
    loss, logits = h(EMB60, Y0)
    # best sub-centre cosines: class 0: 0.5 (0°), class 1: cos 30° (90°), class 2: 0.5 (120°)
    # target: cos(60° + 30°) = 0; top-1 non-target (class 1): cos(30° − 0.1 rad); class 2 unchanged
    expect = [0.0, 10 * math.cos(math.pi / 6 - 0.1), 10 * 0.5]
    torch.testing.assert_close(logits, torch.tensor([expect]), atol=1e-5, rtol=0)
    assert loss.item() == pytest.approx(ce(expect), abs=1e-5)
    h.margin = M / 2  # the inter-top-k margin follows the (scheduled) margin
    assert h.current_topk_margin() == pytest.approx(0.05)
    h.margin = 0.0
    assert h.current_topk_margin() == 0.0


@pytest.mark.parametrize("name", ["am", "aam", "aam-multihead", "aam-subcenter"])
def test_margin_zero_is_plain_softmax(name):
    torch.manual_seed(0)
    h = build_head(name, 8, 5, margin=0.0, scale=7.0)
    emb, y = torch.randn(6, 8), torch.randint(0, 5, (6,))
    loss, logits = h(emb, y)
    cos = h.cosine(emb)
    cos = cos.mean(0) if cos.dim() == 3 else cos  # multi-head: one head here
    torch.testing.assert_close(logits, 7.0 * cos)
    torch.testing.assert_close(loss, F.cross_entropy(7.0 * cos, y))


@pytest.mark.parametrize("name", sorted(HEADS))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_stable_at_cos_one(name, dtype):
    torch.manual_seed(0)
    h = build_head(name, 4, 3)
    w = h.fc.weight if name == "softmax" else h.weight
    if name in ("aam", "am"):
        emb = w.detach()[:2].clone()  # cos θ = 1 exactly for the target: sqrt(1 − cos²) at 0
    else:
        emb = torch.randn(2, 4)
    emb = emb.to(dtype).requires_grad_(True)
    with torch.autocast("cpu", dtype=dtype):
        loss, logits = h(emb, torch.tensor([0, 1]))
    loss.backward()
    assert logits.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(emb.grad.float()).all() and torch.isfinite(w.grad).all()


def test_margin_schedules():
    lin = MarginSchedule(0.2, 0.0, begin=10, steps=100, kind="linear")
    assert lin(0) == 0.0 and lin(60) == pytest.approx(0.1) and lin(110) == 0.2 and lin(10**6) == 0.2
    log, exp = MarginSchedule(0.2, 0, 0, 100, "log"), MarginSchedule(0.2, 0, 0, 100, "exp")
    assert log(50) > lin(60) > exp(50)  # log rises fast first, exp slowly
    lap = MarginSchedule(0.3, 0.0, 0, 1000, "lap-log")
    assert lap(0) == pytest.approx(0.0) and lap(999) == pytest.approx(0.3, abs=1e-3) and lap(100) > 0.15
    ep = MarginSchedule.from_epochs(0.2, 0.0, begin_epoch=1, epochs=2, steps_per_epoch=50, kind="linear")
    assert ep(49) == 0.0 and ep(100) == pytest.approx(0.1) and ep(150) == 0.2
    assert MarginSchedule(0.2, kind="none")(0) == 0.2
    with pytest.raises(ValueError, match="linear"):
        MarginSchedule(0.2, kind="cosine")


def test_registry_error_lists_names():
    with pytest.raises(ValueError, match="aam-subcenter"):
        build_head("arcface", 4, 2)


def test_heads_learn():
    torch.manual_seed(0)
    emb = torch.randn(16, 8)
    y = torch.arange(16) % 4
    for name in sorted(HEADS):
        h = build_head(name, 8, 4)
        opt = torch.optim.SGD(h.parameters(), lr=0.5)
        first = None
        for _ in range(20):
            loss, _ = h(emb, y)
            first = loss.item() if first is None else first
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert loss.item() < first, name
