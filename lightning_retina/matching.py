"""Batched anchor ↔ ground-truth matching for the whole padded batch at once."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_retina._blocks import block_elements
from lightning_retina.targets import PaddedTargets

BACKGROUND = -1
IGNORE = -2
# The RetinaNet paper's thresholds: IoU >= 0.5 foreground, < 0.4 background, ignored in between.
FG_IOU_THRESH = 0.5
BG_IOU_THRESH = 0.4


def pairwise_box_iou(boxes: Tensor, anchors: Tensor) -> Tensor:
    """IoU between every ground-truth box and every anchor of each image.

    Args:
        boxes: ``Tensor[B, M, 4]`` xyxy.
        anchors: ``Tensor[B, A, 4]`` xyxy.

    Returns:
        ``Tensor[B, M, A]``.
    """
    bx1, by1, bx2, by2 = (boxes[..., i, None] for i in range(4))  # [B, M, 1]
    ax1, ay1, ax2, ay2 = anchors.permute(2, 0, 1)[:, :, None].contiguous()  # [B, 1, A], unit stride (vectorised)
    inter = torch.minimum(bx2, ax2).sub_(torch.maximum(bx1, ax1)).clamp_(min=0)
    inter.mul_(torch.minimum(by2, ay2).sub_(torch.maximum(by1, ay1)).clamp_(min=0))
    area_b = (bx2 - bx1) * (by2 - by1)
    area_a = (ax2 - ax1) * (ay2 - ay1)
    union = torch.sub(area_a, inter).add_(area_b)
    return inter.div_(union)


class BatchedMatcher:
    """RetinaNet's anchor labelling (torchvision ``Matcher`` semantics) over a padded batch.

    Each anchor gets the index of the ground-truth box it overlaps most when that IoU is ``>= fg_iou_thresh``,
    :data:`BACKGROUND` (-1) when the best IoU is ``< bg_iou_thresh``, and :data:`IGNORE` (-2) in between. With
    ``allow_low_quality_matches`` every anchor that ties for the best IoU of some ground-truth box keeps its
    best match even below the threshold (as in torchvision and Detectron2). Anchors matched to a crowd box are
    ignored; zero-area and padded boxes match nothing; an image without boxes is all background.

    Args:
        fg_iou_thresh: foreground threshold (paper: 0.5).
        bg_iou_thresh: background threshold (paper: 0.4).
        allow_low_quality_matches: keep the best anchors of every ground-truth box.

    Example::

        >>> matcher = BatchedMatcher(0.5, 0.4)
        >>> matched = matcher(padded_targets, anchors)   # Int64Tensor[B, A]
    """

    def __init__(
        self,
        fg_iou_thresh: float = FG_IOU_THRESH,
        bg_iou_thresh: float = BG_IOU_THRESH,
        allow_low_quality_matches: bool = True,
    ) -> None:
        if not 0 <= bg_iou_thresh <= fg_iou_thresh <= 1:
            raise ValueError(
                f"need 0 <= bg_iou_thresh <= fg_iou_thresh <= 1, got bg={bg_iou_thresh}, fg={fg_iou_thresh}"
            )
        self.fg_iou_thresh = fg_iou_thresh
        self.bg_iou_thresh = bg_iou_thresh
        self.allow_low_quality_matches = allow_low_quality_matches

    def __repr__(self) -> str:
        return (
            f"BatchedMatcher(fg_iou_thresh={self.fg_iou_thresh}, bg_iou_thresh={self.bg_iou_thresh}, "
            f"allow_low_quality_matches={self.allow_low_quality_matches})"
        )

    @torch.no_grad()
    def __call__(self, targets: PaddedTargets, anchors: Tensor) -> Tensor:
        """Label the anchors of every image.

        The IoU matrix ``[B, M, A]`` is never held whole: it is computed in blocks of anchors small enough to stay
        in the CPU cache, reduced at once (best box per anchor, best IoU per box), and recomputed block by block for
        the low-quality matches. Memory stays ``O(B·A + B·M)`` however many boxes and anchors there are.

        Args:
            targets: the padded ground truth, ``M`` boxes per image.
            anchors: ``Tensor[B, A, 4]`` xyxy.

        Returns:
            ``Int64Tensor[B, A]``: a ground-truth index in ``0..M-1``, ``-1`` (background) or ``-2`` (ignored).
        """
        batch, num_anchors = anchors.shape[:2]
        num_boxes = targets.boxes.shape[1]
        if num_boxes == 0:
            return torch.full((batch, num_anchors), BACKGROUND, dtype=torch.int64, device=anchors.device)
        # Padded and zero-area boxes become (0, 0, 0, 0): their IoU is exactly 0, then 0 - 1 = -1, so they never win.
        invalid = ~targets.valid[..., None]  # [B, M, 1]
        boxes, minus_one = targets.boxes.masked_fill(invalid, 0.0), invalid.to(targets.boxes.dtype)
        anchors = anchors.to(boxes.dtype)
        starts = range(0, num_anchors, max(1, block_elements(anchors.device) // (batch * num_boxes)))

        def block_iou(start: int) -> Tensor:  # [B, M, a]
            return pairwise_box_iou(boxes, anchors[:, start : start + starts.step]).sub_(minus_one)

        # torch.max(dim=1) tracks indices slowly on the CPU; the first box reaching the maximum (torch.max's tie
        # rule) comes from comparisons and an amax over weights M, M-1, …, 1 instead.
        first_weight = torch.arange(num_boxes, 0, -1, dtype=boxes.dtype, device=boxes.device)[:, None]  # [M, 1]
        best_iou, matches, best_per_box = [], [], boxes.new_full((batch, num_boxes), -1.0)
        for start in starts:
            iou = block_iou(start)
            values = iou.amax(dim=1, keepdim=True)  # [B, 1, a]
            reach = torch.sub(iou, values).eq_(0).mul_(first_weight).amax(dim=1)  # M - index of the first best box
            best_iou.append(values.squeeze(1))
            matches.append(num_boxes - reach.long())
            torch.maximum(best_per_box, iou.amax(dim=2), out=best_per_box)
        best_iou, matches = torch.cat(best_iou, dim=1), torch.cat(matches, dim=1)  # [B, A]
        labelled = torch.where(best_iou >= self.fg_iou_thresh, matches, IGNORE)
        labelled = torch.where(best_iou < self.bg_iou_thresh, BACKGROUND, labelled)
        if self.allow_low_quality_matches:
            # An anchor ties for the best IoU of some box (> 0: boxes overlapping nothing take nothing). Every IoU of
            # a box is <= its best, so "some IoU equals its box's best" is "max over boxes of IoU - best is 0".
            target = best_per_box.masked_fill(best_per_box <= 0, float("inf"))[..., None]  # [B, M, 1]
            is_best = torch.cat([torch.sub(block_iou(start), target).amax(dim=1) == 0 for start in starts], dim=1)
            labelled = torch.where(is_best, matches, labelled)
        crowd = targets.ignore.gather(1, matches)
        return torch.where(crowd & (labelled >= 0), IGNORE, labelled)
