"""Validation and padding of detection targets (``list[dict]`` → dense per-batch tensors)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence


class PaddedTargets(NamedTuple):
    """Ground truth of a batch padded to the largest number of boxes ``M``.

    Attributes:
        boxes: ``FloatTensor[B, M, 4]`` xyxy; padded rows are zero.
        labels: ``Int64Tensor[B, M]``; padded entries are ``0``.
        valid: ``BoolTensor[B, M]``, ``True`` for a real box with positive width and height.
        ignore: ``BoolTensor[B, M]``, ``True`` for a crowd box (anchors matched to it are ignored by the loss).
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor
    ignore: Tensor


def check_targets(targets: list[dict[str, Tensor]], num_classes: int) -> None:
    """Raise a ``ValueError`` naming the image and the box for any malformed target.

    A target needs ``boxes`` of shape ``[N, 4]`` (xyxy, finite, ``x2 >= x1`` and ``y2 >= y1``) and ``labels`` of
    shape ``[N]`` in ``0..num_classes-1``. Zero-area boxes are accepted (the loss ignores them). The check costs a
    single host synchronisation for the whole batch; the slow per-image search runs only when something is wrong.

    Args:
        targets: one dict per image.
        num_classes: number of foreground classes (no background slot).

    Raises:
        ValueError: naming the image index, the box index and its value.
    """
    for i, t in enumerate(targets):
        if "boxes" not in t or "labels" not in t:
            raise ValueError(f"target of image {i} needs 'boxes' and 'labels', got keys {sorted(t)}")
        boxes, labels = t["boxes"], t["labels"]
        if boxes.ndim != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"target of image {i}: 'boxes' must have shape [N, 4], got {tuple(boxes.shape)}")
        if labels.shape != boxes.shape[:1]:
            raise ValueError(
                f"target of image {i}: 'labels' must have shape [{boxes.shape[0]}], got {tuple(labels.shape)}"
            )
    if not targets or sum(t["boxes"].shape[0] for t in targets) == 0:
        return
    boxes = torch.cat([t["boxes"] for t in targets])
    labels = torch.cat([t["labels"] for t in targets])
    bad_box = ~torch.isfinite(boxes).all(dim=1) | (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    bad_label = (labels < 0) | (labels >= num_classes)
    if not bool((bad_box | bad_label).any()):
        return
    for i, t in enumerate(targets):
        b, lab = t["boxes"], t["labels"]
        box_bad = ~torch.isfinite(b).all(dim=1) | (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
        if box_bad.any():
            j = int(torch.nonzero(box_bad)[0])
            raise ValueError(
                f"image {i}, box {j}: invalid box {b[j].tolist()} (needs finite xyxy with x2 >= x1 and y2 >= y1)"
            )
        lab_bad = (lab < 0) | (lab >= num_classes)
        if lab_bad.any():
            j = int(torch.nonzero(lab_bad)[0])
            raise ValueError(
                f"image {i}, box {j}: label {int(lab[j])} is outside 0..{num_classes - 1} "
                f"(num_classes={num_classes} counts foreground classes only)"
            )


def pad_targets(targets: list[dict[str, Tensor]], device: torch.device | None = None) -> PaddedTargets:
    """Stack per-image targets into dense ``[B, M, ...]`` tensors.

    Args:
        targets: one dict per image with ``boxes`` ``[N_i, 4]``, ``labels`` ``[N_i]`` and optionally ``iscrowd``
            ``[N_i]`` (bool).
        device: where to put the result (default: the device of the first target's boxes).

    Returns:
        PaddedTargets with ``M = max(N_i)`` (``M`` may be 0).
    """
    device = device if device is not None else targets[0]["boxes"].device
    boxes = pad_sequence([t["boxes"].to(device, torch.float32) for t in targets], batch_first=True)
    labels = pad_sequence([t["labels"].to(device, torch.int64) for t in targets], batch_first=True)
    present = pad_sequence(
        [torch.ones(t["boxes"].shape[0], dtype=torch.bool, device=device) for t in targets], batch_first=True
    )
    crowd = pad_sequence(
        [_crowd_flags(t).to(device) for t in targets], batch_first=True
    )
    positive_area = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    return PaddedTargets(boxes=boxes, labels=labels, valid=present & positive_area, ignore=crowd & present)


def _crowd_flags(target: dict[str, Tensor]) -> Tensor:
    n = target["boxes"].shape[0]
    crowd = target.get("iscrowd")
    if crowd is None:
        return torch.zeros(n, dtype=torch.bool)
    return crowd.to(torch.bool).reshape(n)
