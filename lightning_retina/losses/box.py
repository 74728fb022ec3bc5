"""Box-regression losses: L1 and smooth-L1 on boxes or deltas, and the IoU family (IoU, GIoU, DIoU, CIoU).

Every function takes two tensors of the same shape ``[..., 4]`` and returns one loss per box (shape ``[...]``)
for ``reduction="none"``. The IoU-family losses expect boxes in ``(x1, y1, x2, y2)`` format with ``x1 < x2`` and
``y1 < y2``; degenerate (zero-area) boxes still give finite losses and gradients thanks to ``eps``. Inputs in
float16/bfloat16 (or integers) are computed in float32 and the loss is returned in float32, so a model trained
under AMP never overflows in the area products; float64 stays float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_retina.losses._reduction import reduce_loss
from lightning_retina.losses._dtypes import upcast as _upcast


def l1_loss(pred: Tensor, target: Tensor, reduction: str = "none") -> Tensor:
    """L1 loss per box, summed over the four coordinates.

    Args:
        pred: Tensor[N, 4] (or ``[..., 4]``), predicted boxes or encoded box deltas.
        target: Tensor of the same shape as ``pred``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. ``"mean"`` averages over boxes (not coordinates); the
            mean of an empty input is ``0`` and stays in the graph.

    Returns:
        Tensor: ``sum_i |pred_i - target_i|`` of shape ``[N]`` for ``"none"``, a float32 (or float64) scalar
        otherwise.

    Raises:
        ValueError: for mismatched shapes, a last dimension other than 4, or an unknown ``reduction``.

    Reference:
        Ross Girshick, "Fast R-CNN", ICCV 2015 (box-delta regression), https://arxiv.org/abs/1504.08083
    """
    pred, target = _prepare(pred, target, "pred", "target")
    return reduce_loss((pred - target).abs().sum(dim=-1), reduction)


def smooth_l1_loss(pred: Tensor, target: Tensor, beta: float = 1.0 / 9.0, reduction: str = "none") -> Tensor:
    """Smooth-L1 (Huber-like) loss per box, summed over the four coordinates.

    Elementwise ``0.5 * d**2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 * beta`` with ``d = pred - target``,
    exactly :func:`torch.nn.functional.smooth_l1_loss`; ``beta=0`` is the L1 loss.

    Args:
        pred: Tensor[N, 4] (or ``[..., 4]``), predicted boxes or encoded box deltas.
        target: Tensor of the same shape as ``pred``.
        beta: the point where the loss changes from quadratic to linear, ``>= 0``. Default: ``1/9`` (RetinaNet).
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. ``"mean"`` averages over boxes (not coordinates).

    Returns:
        Tensor: shape ``[N]`` for ``"none"``, a scalar otherwise (float32, or float64 for float64 input).

    Raises:
        ValueError: for a negative ``beta``, mismatched shapes, a last dimension other than 4, or an unknown
            ``reduction``.

    Reference:
        Ross Girshick, "Fast R-CNN", ICCV 2015, https://arxiv.org/abs/1504.08083
    """
    if beta < 0:
        raise ValueError(f"smooth_l1_loss needs beta >= 0, got beta={beta}")
    pred, target = _prepare(pred, target, "pred", "target")
    loss = F.smooth_l1_loss(pred, target, beta=beta, reduction="none").sum(dim=-1)
    return reduce_loss(loss, reduction)


def iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """IoU loss ``1 - IoU`` (the linear form; UnitBox uses ``-ln IoU``). Symmetric in its two arguments.

    Its gradient vanishes when the boxes do not overlap; prefer :func:`giou_loss`, :func:`diou_loss` or
    :func:`ciou_loss` for training from poorly placed boxes.

    Args:
        boxes1: Tensor[N, 4] (or ``[..., 4]``), boxes ``(x1, y1, x2, y2)`` with ``x1 < x2`` and ``y1 < y2``.
        boxes2: Tensor of the same shape, in the same format.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. The mean of an empty input is ``0`` and stays in the graph.
        eps: added to the union so that zero-area boxes give a finite loss. Default: ``1e-7``.

    Returns:
        Tensor: the loss in ``[0, 1]``, shape ``[N]`` for ``"none"``, a scalar otherwise; float32 for
        half-precision input.

    Raises:
        ValueError: for mismatched shapes, a last dimension other than 4, or an unknown ``reduction``.

    Reference:
        Jiahui Yu, Yuning Jiang, Zhangyang Wang, Zhimin Cao, Thomas Huang, "UnitBox: An Advanced Object Detection
        Network", ACM MM 2016, https://arxiv.org/abs/1608.01471
    """
    boxes1, boxes2 = _prepare(boxes1, boxes2, "boxes1", "boxes2")
    inter, union = _inter_union(boxes1, boxes2)
    return reduce_loss(1 - inter / (union + eps), reduction)


def giou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """Generalized IoU loss ``1 - IoU + |C \\ (A ∪ B)| / |C|``, ``C`` the smallest box enclosing both.

    Non-zero gradient also for disjoint boxes; values lie in ``[0, 2]``. Symmetric in its two arguments.

    Args:
        boxes1: Tensor[N, 4] (or ``[..., 4]``), boxes ``(x1, y1, x2, y2)`` with ``x1 < x2`` and ``y1 < y2``.
        boxes2: Tensor of the same shape, in the same format.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. The mean of an empty input is ``0`` and stays in the graph.
        eps: added to the union and to the enclosing area. Default: ``1e-7``.

    Returns:
        Tensor: shape ``[N]`` for ``"none"``, a scalar otherwise; float32 for half-precision input.

    Raises:
        ValueError: for mismatched shapes, a last dimension other than 4, or an unknown ``reduction``.

    Reference:
        Hamid Rezatofighi, Nathan Tsoi, JunYoung Gwak, Amir Sadeghian, Ian Reid, Silvio Savarese, "Generalized
        Intersection over Union: A Metric and A Loss for Bounding Box Regression", CVPR 2019,
        https://arxiv.org/abs/1902.09630
    """
    boxes1, boxes2 = _prepare(boxes1, boxes2, "boxes1", "boxes2")
    inter, union = _inter_union(boxes1, boxes2)
    enclosing_w, enclosing_h = _enclosing_wh(boxes1, boxes2)
    enclosing_area = enclosing_w * enclosing_h
    giou = inter / (union + eps) - (enclosing_area - union) / (enclosing_area + eps)
    return reduce_loss(1 - giou, reduction)


def diou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """Distance-IoU loss ``1 - IoU + ρ²(b1, b2) / c²``.

    ``ρ`` is the distance between the two box centres and ``c`` the diagonal of the smallest enclosing box.
    Symmetric in its two arguments.

    Args:
        boxes1: Tensor[N, 4] (or ``[..., 4]``), boxes ``(x1, y1, x2, y2)`` with ``x1 < x2`` and ``y1 < y2``.
        boxes2: Tensor of the same shape, in the same format.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. The mean of an empty input is ``0`` and stays in the graph.
        eps: added to the union and to ``c²``. Default: ``1e-7``.

    Returns:
        Tensor: shape ``[N]`` for ``"none"``, a scalar otherwise; float32 for half-precision input.

    Raises:
        ValueError: for mismatched shapes, a last dimension other than 4, or an unknown ``reduction``.

    Reference:
        Zhaohui Zheng, Ping Wang, Wei Liu, Jinze Li, Rongguang Ye, Dongwei Ren, "Distance-IoU Loss: Faster and
        Better Learning for Bounding Box Regression", AAAI 2020, https://arxiv.org/abs/1911.08287
    """
    boxes1, boxes2 = _prepare(boxes1, boxes2, "boxes1", "boxes2")
    loss, _ = _diou_loss_and_iou(boxes1, boxes2, eps)
    return reduce_loss(loss, reduction)


def ciou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """Complete-IoU loss ``1 - IoU + ρ²(b1, b2) / c² + α v``.

    ``v = 4 / π² (atan(w2 / (h2 + eps)) - atan(w1 / (h1 + eps)))²`` measures the aspect-ratio difference and
    ``α = v / (1 - IoU + v + eps)`` is computed without gradient, as in the paper. Unlike
    :func:`torchvision.ops.complete_box_iou_loss`, ``eps`` is used in the width/height ratio and in the DIoU term,
    so zero-height boxes give finite losses and gradients.

    Args:
        boxes1: Tensor[N, 4] (or ``[..., 4]``), predicted boxes ``(x1, y1, x2, y2)`` with ``x1 < x2``, ``y1 < y2``.
        boxes2: Tensor of the same shape, target boxes in the same format.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. The mean of an empty input is ``0`` and stays in the graph.
        eps: added to the union, to ``c²``, to the heights and to the denominator of ``α``. Default: ``1e-7``.

    Returns:
        Tensor: shape ``[N]`` for ``"none"``, a scalar otherwise; float32 for half-precision input.

    Raises:
        ValueError: for mismatched shapes, a last dimension other than 4, or an unknown ``reduction``.

    Reference:
        The DIoU paper (see :func:`diou_loss`), which defines CIoU in its Section 3.2.
    """
    boxes1, boxes2 = _prepare(boxes1, boxes2, "boxes1", "boxes2")
    diou, iou = _diou_loss_and_iou(boxes1, boxes2, eps)
    w1, h1 = _wh(boxes1)
    w2, h2 = _wh(boxes2)
    v = (4 / math.pi**2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))).pow(2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return reduce_loss(diou + alpha * v, reduction)


def _prepare(a: Tensor, b: Tensor, name_a: str, name_b: str) -> tuple[Tensor, Tensor]:
    """Check that both inputs are ``[..., 4]`` of the same shape; upcast half/integer inputs to a common float."""
    if a.shape != b.shape or a.shape[-1:] != (4,):
        raise ValueError(
            f"{name_a} and {name_b} must both have shape [..., 4], got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    a, b = _upcast(a), _upcast(b)
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)


def _wh(boxes: Tensor) -> tuple[Tensor, Tensor]:
    return boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]


def _inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """Intersection and union areas of paired boxes, each of shape ``[...]``."""
    inter_w = (torch.min(boxes1[..., 2], boxes2[..., 2]) - torch.max(boxes1[..., 0], boxes2[..., 0])).clamp(min=0)
    inter_h = (torch.min(boxes1[..., 3], boxes2[..., 3]) - torch.max(boxes1[..., 1], boxes2[..., 1])).clamp(min=0)
    inter = inter_w * inter_h
    w1, h1 = _wh(boxes1)
    w2, h2 = _wh(boxes2)
    return inter, w1 * h1 + w2 * h2 - inter


def _enclosing_wh(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """Width and height of the smallest box enclosing each pair."""
    width = torch.max(boxes1[..., 2], boxes2[..., 2]) - torch.min(boxes1[..., 0], boxes2[..., 0])
    height = torch.max(boxes1[..., 3], boxes2[..., 3]) - torch.min(boxes1[..., 1], boxes2[..., 1])
    return width, height


def _diou_loss_and_iou(boxes1: Tensor, boxes2: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """DIoU loss ``1 - IoU + ρ²/c²`` and the IoU itself (CIoU needs it for ``α``)."""
    inter, union = _inter_union(boxes1, boxes2)
    iou = inter / (union + eps)
    enclosing_w, enclosing_h = _enclosing_wh(boxes1, boxes2)
    diagonal_sq = enclosing_w.pow(2) + enclosing_h.pow(2) + eps
    # centre offsets, times 2: (x1 + x2) - (x1' + x2') = 2 * (centre - centre')
    dx = (boxes1[..., 0] + boxes1[..., 2]) - (boxes2[..., 0] + boxes2[..., 2])
    dy = (boxes1[..., 1] + boxes1[..., 3]) - (boxes2[..., 1] + boxes2[..., 3])
    centre_distance_sq = (dx.pow(2) + dy.pow(2)) / 4
    return 1 - iou + centre_distance_sq / diagonal_sq, iou
