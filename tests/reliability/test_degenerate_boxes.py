"""Degenerate and empty ground truth through the whole model, and property tests of every box loss.

``tests/test_module.py`` trains on empty images and on a mix of zero-area, crowd and normal boxes with the default
losses; ``tests/test_box_losses.py`` checks hand-picked degenerate pairs. Here: batches with *no* usable box
(all crowd, all zero-area, all empty), boxes on the border and 1000 boxes in one image through the model, the small
cases also through every classification loss, box loss and normalisation, and random boxes (hypothesis) through
every box loss.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import Tensor

from lightning_retina.losses import RetinaNetLoss
from lightning_retina.losses.retinanet import CLS_LOSSES, NORMALIZATIONS, REG_LOSSES
from tests.reliability.conftest import SIZE, tiny_module
from tests.test_box_losses import ALL_LOSSES


def _target(boxes: list[list[float]] | Tensor, crowd: bool = False) -> dict[str, Tensor]:
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    labels = torch.arange(len(boxes)) % 4
    return {"boxes": boxes, "labels": labels, "iscrowd": torch.full((len(boxes),), crowd)}


def _thousand_boxes() -> Tensor:
    """1000 boxes from 1 px to the whole image, many of them overlapping."""
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(1000, 2, generator=g) * (SIZE - 1)
    wh = 1 + torch.rand(1000, 2, generator=g) * (SIZE - 1 - xy)
    return torch.cat([xy, xy + wh], dim=1)


# case -> (targets of a 2-image batch, whether any anchor can be foreground)
CASES = {
    "all crowd": ([_target([[4, 4, 40, 40], [30, 30, 64, 64]], crowd=True), _target([[0, 0, 64, 64]], crowd=True)],
                  False),
    "all zero-area": ([_target([[10, 10, 10, 40], [5, 20, 60, 20]]), _target([[32, 32, 32, 32]])], False),
    "all empty": ([_target([]), _target([])], False),
    "touching the border": ([_target([[0, 0, 64, 64], [0, 0, 16, 64], [48, 0, 64, 16]]),
                             _target([[0, 56, 64, 64], [60, 0, 64, 64]])], True),
    "1000 boxes": ([_target(_thousand_boxes()), _target([])], True),
}  # fmt: skip


@pytest.fixture(scope="module")
def module():
    return tiny_module().train()


def _images(n: int) -> list[Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(3, SIZE, SIZE, generator=g) for _ in range(n)]


@pytest.mark.parametrize("case", list(CASES))
def test_model_losses_and_gradients_are_finite(module, case: str) -> None:
    targets, has_foreground = CASES[case]
    module.zero_grad(set_to_none=True)
    losses = module.compute_losses(_images(len(targets)), targets)
    assert all(torch.isfinite(v) for v in losses.values()), losses
    assert losses["loss_cls"] > 0
    if has_foreground:
        assert losses["loss_reg"] > 0
    else:
        assert losses["loss_reg"].item() == 0.0
    (losses["loss_cls"] + losses["loss_reg"]).backward()
    trainable = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    missing = [name for name, p in trainable if p.grad is None]
    assert not missing, f"no gradient (the graph is cut, DDP would hang) for {missing[:3]}"
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)


# Every classification loss, box loss and normalisation at least once (the matching is the costly part).
VARIANTS = [(cls_loss, "smooth_l1", "batch") for cls_loss in CLS_LOSSES] + [
    ("focal", reg_loss, normalization)
    for reg_loss in REG_LOSSES[1:]
    for normalization in (NORMALIZATIONS if reg_loss == "giou" else NORMALIZATIONS[:1])
]


@pytest.mark.parametrize("case", [case for case in CASES if case != "1000 boxes"])  # scale: the test above
def test_every_loss_variant_is_finite(module, case: str) -> None:
    """Each variant on the same head outputs: finite values, reg loss 0 without foreground, finite head gradients."""
    assert {v[0] for v in VARIANTS} == set(CLS_LOSSES) and {v[1] for v in VARIANTS} == set(REG_LOSSES)
    assert {v[2] for v in VARIANTS} == set(NORMALIZATIONS)
    targets, has_foreground = CASES[case]
    with torch.no_grad():
        out = module.forward_heads(_images(len(targets)), targets)
    for cls_loss, reg_loss, normalization in VARIANTS:
        variant = f"{cls_loss}/{reg_loss}/{normalization}"
        head = {k: v.clone().requires_grad_() for k, v in out.head_outputs.items()}
        loss_fn = RetinaNetLoss(cls_loss=cls_loss, reg_loss=reg_loss, normalization=normalization)
        losses = loss_fn(head, out.anchors, out.targets)
        assert all(torch.isfinite(v) for v in losses.values()), (variant, losses)
        assert (losses["loss_reg"].item() > 0) == has_foreground, (variant, losses)
        (losses["loss_cls"] + losses["loss_reg"]).backward()
        assert all(v.grad is not None and torch.isfinite(v.grad).all() for v in head.values()), variant


# --------------------------------------------------------------------------------------- property-based tests
_coordinate = st.floats(-1000, 1000, allow_nan=False, allow_infinity=False, width=32)
_extent = st.one_of(st.just(0.0), st.floats(0, 2000, allow_nan=False, allow_infinity=False, width=32))
_box = st.tuples(_coordinate, _coordinate, _extent, _extent).map(lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))
_pairs = st.lists(st.tuples(_box, _box), min_size=1, max_size=8)
_dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16])

# documented ranges; half-precision inputs are rounded first, the losses are computed in float32
RANGES = {"iou": (0.0, 1.0), "giou": (0.0, 2.0), "diou": (0.0, 2.0), "ciou": (0.0, None), "l1": (0.0, None),
          "smooth_l1": (0.0, None)}  # fmt: skip


def _pair_tensors(pairs, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    boxes1 = torch.tensor([p[0] for p in pairs], dtype=dtype).requires_grad_()
    boxes2 = torch.tensor([p[1] for p in pairs], dtype=dtype).requires_grad_()
    return boxes1, boxes2


@pytest.mark.parametrize("name", list(ALL_LOSSES))
@settings(max_examples=100, deadline=None)
@given(pairs=_pairs, dtype=_dtypes)
def test_random_boxes_give_finite_losses_in_range(name: str, pairs, dtype: torch.dtype) -> None:
    """Finite values in the documented range for every dtype; finite gradients (float16: next test)."""
    assert set(RANGES) == set(ALL_LOSSES)
    boxes1, boxes2 = _pair_tensors(pairs, dtype)
    loss = ALL_LOSSES[name](boxes1, boxes2)
    assert loss.shape == (len(pairs),)
    assert torch.isfinite(loss).all(), loss
    low, high = RANGES[name]
    assert (loss >= low).all(), loss
    if high is not None:
        assert (loss <= high).all(), loss
    loss.sum().backward()
    if dtype != torch.float16:
        assert torch.isfinite(boxes1.grad).all() and torch.isfinite(boxes2.grad).all()


@pytest.mark.parametrize("name", list(ALL_LOSSES))
@settings(max_examples=100, deadline=None)
@given(pairs=_pairs)
@example(pairs=[((0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0))])  # a point predicted for a zero-height box
def test_float16_inputs_get_finite_gradients(name: str, pairs) -> None:
    """At zero-area boxes giou's enclosing-area term and ciou's aspect term have derivatives ~1/eps = 1e7: finite
    in float32, they must saturate (not overflow) when cast back to a float16 input."""
    boxes1, boxes2 = _pair_tensors(pairs, torch.float16)
    ALL_LOSSES[name](boxes1, boxes2).sum().backward()
    assert torch.isfinite(boxes1.grad).all() and torch.isfinite(boxes2.grad).all()


@pytest.mark.parametrize("name", ["giou", "ciou"])
def test_float16_gradient_saturates_where_float32_exceeds_its_range(name: str) -> None:
    """A point predicted for a zero-height box: the float32 gradient is beyond ±65504, the float16 one is that
    gradient clamped to ±65504 (saturated, not zeroed or rescaled)."""
    pair = [[0.0, 0.0, 0.0, 0.0]], [[0.0, 0.0, 1.0, 0.0]]
    grads = {}
    for dtype in (torch.float32, torch.float16):
        boxes1, boxes2 = (torch.tensor(b, dtype=dtype, requires_grad=True) for b in pair)
        ALL_LOSSES[name](boxes1, boxes2).sum().backward()
        grads[dtype] = torch.cat([boxes1.grad, boxes2.grad])
    limit = torch.finfo(torch.float16).max
    assert grads[torch.float32].abs().max() > limit
    torch.testing.assert_close(
        grads[torch.float16].float(), grads[torch.float32].clamp(-limit, limit), rtol=1e-3, atol=0
    )
