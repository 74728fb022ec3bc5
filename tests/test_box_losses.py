"""Box losses against torchvision.ops, F.smooth_l1_loss and values derived by hand."""

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
import torchvision.ops

from lightning_retina.losses import ciou_loss, diou_loss, giou_loss, iou_loss, l1_loss, smooth_l1_loss

REDUCTIONS = ["none", "mean", "sum"]
IOU_LOSSES = {"iou": iou_loss, "giou": giou_loss, "diou": diou_loss, "ciou": ciou_loss}
ALL_LOSSES = {**IOU_LOSSES, "l1": l1_loss, "smooth_l1": smooth_l1_loss}

# Independent per-box references ("none" reduction).
REFERENCES = {
    "iou": (iou_loss, lambda a, b: 1 - torchvision.ops.box_iou(a, b).diag()),
    "giou": (giou_loss, torchvision.ops.generalized_box_iou_loss),
    "diou": (diou_loss, torchvision.ops.distance_box_iou_loss),
    "ciou": (ciou_loss, torchvision.ops.complete_box_iou_loss),
    "l1": (l1_loss, lambda a, b: F.l1_loss(a, b, reduction="none").sum(-1)),
    **{
        f"smooth_l1_beta{beta:.3g}": (
            partial(smooth_l1_loss, beta=beta),
            lambda a, b, beta=beta: F.smooth_l1_loss(a, b, beta=beta, reduction="none").sum(-1),
        )
        for beta in (1 / 9, 1.0, 0.0)
    },
}


def _random_boxes(n: int, seed: int, scale: float = 10.0) -> torch.Tensor:
    """``n`` valid xyxy boxes in a ``2*scale`` square: nested, overlapping and disjoint pairs all occur."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * scale
    wh = torch.rand(n, 2, generator=g) * scale + scale / 100
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", list(REFERENCES))
def test_matches_reference_values_and_gradients(name: str, reduction: str) -> None:
    ours, reference = REFERENCES[name]
    a, b = _random_boxes(200, seed=1), _random_boxes(200, seed=2)
    a_ours, a_ref = a.clone().requires_grad_(), a.clone().requires_grad_()
    expected = {"none": lambda x: x, "mean": torch.mean, "sum": torch.sum}[reduction](reference(a_ref, b))
    got = ours(a_ours, b, reduction=reduction)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    got.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(a_ours.grad, a_ref.grad, rtol=1e-5, atol=1e-5)


def test_iou_family_on_random_boxes_covers_disjoint_and_nested_pairs() -> None:
    """Guards the agreement test above: its random pairs must include every geometric situation."""
    a, b = _random_boxes(200, seed=1), _random_boxes(200, seed=2)
    iou = torchvision.ops.box_iou(a, b).diag()
    a_in_b = ((b[:, :2] <= a[:, :2]) & (a[:, 2:] <= b[:, 2:])).all(1)
    b_in_a = ((a[:, :2] <= b[:, :2]) & (b[:, 2:] <= a[:, 2:])).all(1)
    nested = a_in_b | b_in_a
    assert (iou == 0).sum() > 10
    assert ((iou > 0) & ~nested).sum() > 10
    assert nested.sum() > 0


def _ciou(iou: float, rho_sq: float, c_sq: float, ratio1: float, ratio2: float) -> float:
    """CIoU loss from the paper's formula; ``ratio = w / h``."""
    v = 4 / math.pi**2 * (math.atan(ratio2) - math.atan(ratio1)) ** 2
    alpha = v / (1 - iou + v)
    return 1 - iou + rho_sq / c_sq + alpha * v


# (boxes1, boxes2, expected loss per name), every number derived from the geometry by hand.
HAND_CASES = {
    # identical: IoU 1, no enclosing slack, centres coincide, same aspect ratio
    "identical": ([0, 0, 2, 2], [0, 0, 2, 2], {"iou": 0.0, "giou": 0.0, "diou": 0.0, "ciou": 0.0}),
    # [0,0,1,1] inside [0,0,2,2]: inter 1, union 4, enclosing 2x2 (area 4, diagonal² 8), centres (1,1) vs (.5,.5)
    "quarter_inside": (
        [0, 0, 2, 2],
        [0, 0, 1, 1],
        {"iou": 1 - 1 / 4, "giou": 1 - (1 / 4 - 0 / 4), "diou": 1 - 1 / 4 + 0.5 / 8, "ciou": 1 - 1 / 4 + 0.5 / 8},
    ),
    # touching side by side: inter 0, union 2, enclosing 2x1 (area 2, diagonal² 5), centres 1 apart
    "side_by_side": (
        [0, 0, 1, 1],
        [1, 0, 2, 1],
        {"iou": 1.0, "giou": 1 - (0 - (2 - 2) / 2), "diou": 1 + 1 / 5, "ciou": 1 + 1 / 5},
    ),
    # touching at a corner: inter 0, union 2, enclosing 2x2 (area 4, diagonal² 8), centre distance² 1+1
    "diagonal": (
        [0, 0, 1, 1],
        [1, 1, 2, 2],
        {"iou": 1.0, "giou": 1 - (0 - (4 - 2) / 4), "diou": 1 + 2 / 8, "ciou": 1 + 2 / 8},
    ),
    # half-overlapping 4x2 boxes: inter 2x2=4, union 8+8-4=12, enclosing 6x2 (area 12, diagonal² 36+4),
    # centres (2,1) vs (4,1): distance² 4; same aspect ratio so CIoU = DIoU
    "shifted": (
        [0, 0, 4, 2],
        [2, 0, 6, 2],
        {"iou": 1 - 4 / 12, "giou": 1 - 4 / 12, "diou": 1 - 4 / 12 + 4 / 40, "ciou": 1 - 4 / 12 + 4 / 40},
    ),
    # square in a 4x2 box: inter 4, union 8, enclosing 4x2 (diagonal² 20), centres (1,1) vs (2,1), ratios 1 vs 2
    "square_vs_wide": (
        [0, 0, 2, 2],
        [0, 0, 4, 2],
        {"iou": 1 - 4 / 8, "giou": 1 - 4 / 8, "diou": 1 - 4 / 8 + 1 / 20, "ciou": _ciou(4 / 8, 1, 20, 1, 2)},
    ),
    # tall 1x3 vs wide 3x1 crossing at the corner square: inter 1, union 3+3-1=5, enclosing 3x3 (area 9,
    # diagonal² 18), centres (.5,1.5) vs (1.5,.5): distance² 2, ratios 1/3 vs 3
    "tall_vs_wide": (
        [0, 0, 1, 3],
        [0, 0, 3, 1],
        {
            "iou": 1 - 1 / 5,
            "giou": 1 - (1 / 5 - (9 - 5) / 9),
            "diou": 1 - 1 / 5 + 2 / 18,
            "ciou": _ciou(1 / 5, 2, 18, 1 / 3, 3),
        },
    ),
}


@pytest.mark.parametrize(
    ("name", "box1", "box2", "expected"),
    [
        pytest.param(name, box1, box2, values[name], id=f"{name}-{case}")
        for case, (box1, box2, values) in HAND_CASES.items()
        for name in values
    ],
)
def test_hand_derived_values(name: str, box1: list, box2: list, expected: float) -> None:
    boxes1 = torch.tensor([box1], dtype=torch.float64)
    boxes2 = torch.tensor([box2], dtype=torch.float64)
    got = IOU_LOSSES[name](boxes1, boxes2)
    torch.testing.assert_close(got, torch.tensor([expected], dtype=torch.float64), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(IOU_LOSSES))
def test_hand_derived_batch_reductions(name: str) -> None:
    boxes1 = torch.tensor([c[0] for c in HAND_CASES.values()], dtype=torch.float64)
    boxes2 = torch.tensor([c[1] for c in HAND_CASES.values()], dtype=torch.float64)
    expected = [c[2][name] for c in HAND_CASES.values()]
    assert IOU_LOSSES[name](boxes1, boxes2, reduction="sum").item() == pytest.approx(sum(expected), abs=1e-5)
    assert IOU_LOSSES[name](boxes1, boxes2, reduction="mean").item() == pytest.approx(
        sum(expected) / len(expected), abs=1e-6
    )


def test_smooth_l1_hand_value_and_beta_zero_is_l1() -> None:
    # beta=1, d = (0.5, -2, 0, 1): 0.5*0.5²/1 + (2 - 0.5) + 0 + (1 - 0.5) = 2.125
    pred = torch.tensor([[0.5, -2.0, 0.0, 1.0]])
    target = torch.zeros(1, 4)
    assert smooth_l1_loss(pred, target, beta=1.0).item() == pytest.approx(2.125)
    assert l1_loss(pred, target).item() == pytest.approx(0.5 + 2 + 0 + 1)
    a, b = _random_boxes(50, seed=3), _random_boxes(50, seed=4)
    torch.testing.assert_close(smooth_l1_loss(a, b, beta=0.0), l1_loss(a, b))


def test_smooth_l1_negative_beta_raises() -> None:
    with pytest.raises(ValueError, match="beta=-0.5"):
        smooth_l1_loss(torch.zeros(1, 4), torch.zeros(1, 4), beta=-0.5)


DEGENERATE_PAIRS = {
    "identical": ([1, 1, 3, 3], [1, 1, 3, 3]),
    "zero_area_point": ([1, 1, 1, 1], [0, 0, 2, 2]),
    "zero_height": ([0, 1, 2, 1], [0, 0, 2, 2]),
    "zero_width": ([1, 0, 1, 2], [0, 0, 2, 2]),
    "both_zero_height": ([0, 1, 2, 1], [0, 1, 2, 1]),
    "identical_points": ([1, 1, 1, 1], [1, 1, 1, 1]),
    "zero_height_target": ([0, 0, 2, 2], [0, 1, 2, 1]),
}


@pytest.mark.parametrize("pair", list(DEGENERATE_PAIRS))
@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_finite_values_and_gradients_for_degenerate_boxes(name: str, pair: str) -> None:
    boxes1 = torch.tensor([DEGENERATE_PAIRS[pair][0]], dtype=torch.float32, requires_grad=True)
    boxes2 = torch.tensor([DEGENERATE_PAIRS[pair][1]], dtype=torch.float32, requires_grad=True)
    loss = ALL_LOSSES[name](boxes1, boxes2, reduction="sum")
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(boxes1.grad).all()
    assert torch.isfinite(boxes2.grad).all()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_empty_input_is_zero_and_backpropagates(name: str, reduction: str) -> None:
    boxes1 = torch.empty(0, 4, requires_grad=True)
    loss = ALL_LOSSES[name](boxes1, torch.empty(0, 4), reduction=reduction)
    assert loss.item() == 0.0
    loss.backward()
    assert boxes1.grad is not None
    assert boxes1.grad.shape == (0, 4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_half_precision_input_gives_float32(name: str, dtype: torch.dtype) -> None:
    fn = ALL_LOSSES[name]
    a = _random_boxes(100, seed=5).to(dtype).requires_grad_()
    b = _random_boxes(100, seed=6).to(dtype)
    got = fn(a, b)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, fn(a.detach().float(), b.float()), rtol=1e-6, atol=1e-6)
    got.sum().backward()
    assert a.grad.dtype == dtype and torch.isfinite(a.grad).all()


@pytest.mark.parametrize("name", list(IOU_LOSSES))
def test_half_precision_areas_do_not_overflow(name: str) -> None:
    # areas up to ~1e8 px² exceed float16's maximum of 65504; the loss must be computed in float32
    a = _random_boxes(50, seed=7, scale=10_000.0)
    b = _random_boxes(50, seed=8, scale=10_000.0)
    got = IOU_LOSSES[name](a.half(), b.half())
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, IOU_LOSSES[name](a.half().float(), b.half().float()))


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_batched_leading_dims(name: str) -> None:
    a, b = _random_boxes(12, seed=9), _random_boxes(12, seed=10)
    got = ALL_LOSSES[name](a.view(3, 4, 4), b.view(3, 4, 4))
    assert got.shape == (3, 4)
    torch.testing.assert_close(got.flatten(), ALL_LOSSES[name](a, b))


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_bad_reduction_raises(name: str) -> None:
    with pytest.raises(ValueError, match="Invalid reduction 'avg'"):
        ALL_LOSSES[name](_random_boxes(2, 0), _random_boxes(2, 1), reduction="avg")


@pytest.mark.parametrize("name", list(ALL_LOSSES))
@pytest.mark.parametrize(("shape1", "shape2"), [((3, 4), (2, 4)), ((3, 5), (3, 5))])
def test_bad_shapes_raise(name: str, shape1: tuple, shape2: tuple) -> None:
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 4\], got \(3, .\) and \(., .\)"):
        ALL_LOSSES[name](torch.zeros(shape1), torch.zeros(shape2))
