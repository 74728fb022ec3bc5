"""Batched anchor ↔ ground-truth matching for the whole padded batch at once."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_retina.targets import PaddedTargets

BACKGROUND = -1
IGNORE = -2

# Upper bound on B*M*A elements of one IoU block; bigger batches are matched in chunks of images to bound memory.
_MAX_IOU_ELEMENTS = 1 << 25


def pairwise_box_iou(boxes: Tensor, anchors: Tensor) -> Tensor:
    """IoU between every ground-truth box and every anchor of each image.

    Args:
        boxes: ``Tensor[B, M, 4]`` xyxy.
        anchors: ``Tensor[B, A, 4]`` xyxy.

    Returns:
        ``Tensor[B, M, A]``.
    """
    bx1, by1, bx2, by2 = (boxes[..., i, None] for i in range(4))  # [B, M, 1]
    ax1, ay1, ax2, ay2 = (anchors[:, None, :, i] for i in range(4))  # [B, 1, A]
    inter = (torch.minimum(bx2, ax2) - torch.maximum(bx1, ax1)).clamp_(min=0)
    inter.mul_((torch.minimum(by2, ay2) - torch.maximum(by1, ay1)).clamp_(min=0))
    area_b = (bx2 - bx1) * (by2 - by1)
    area_a = (ax2 - ax1) * (ay2 - ay1)
    union = (area_b + area_a).sub_(inter)
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

    def __init__(self, fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.4, allow_low_quality_matches: bool = True):
        if not 0 <= bg_iou_thresh <= fg_iou_thresh <= 1:
            raise ValueError(
                f"need 0 <= bg_iou_thresh <= fg_iou_thresh <= 1, got bg={bg_iou_thresh}, fg={fg_iou_thresh}"
            )
        self.fg_iou_thresh = fg_iou_thresh
        self.bg_iou_thresh = bg_iou_thresh
        self.allow_low_quality_matches = allow_low_quality_matches

    @torch.no_grad()
    def __call__(self, targets: PaddedTargets, anchors: Tensor) -> Tensor:
        """Label the anchors of every image.

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
        chunk = max(1, _MAX_IOU_ELEMENTS // (num_boxes * num_anchors))
        return torch.cat(
            [
                self._match(
                    PaddedTargets(*(t[start : start + chunk] for t in targets)), anchors[start : start + chunk]
                )
                for start in range(0, batch, chunk)
            ]
        )

    def _match(self, targets: PaddedTargets, anchors: Tensor) -> Tensor:
        iou = pairwise_box_iou(targets.boxes, anchors.to(targets.boxes.dtype))
        iou.masked_fill_(~targets.valid[..., None], -1.0)  # padded / zero-area boxes never win
        best_iou, matches = iou.max(dim=1)  # [B, A]
        labelled = torch.where(best_iou >= self.fg_iou_thresh, matches, IGNORE)
        labelled = torch.where(best_iou < self.bg_iou_thresh, BACKGROUND, labelled)
        if self.allow_low_quality_matches:
            best_per_box = iou.max(dim=2, keepdim=True).values  # [B, M, 1]
            is_best = (iou == best_per_box) & (best_per_box > 0)
            labelled = torch.where(is_best.any(dim=1), matches, labelled)
        crowd = targets.ignore.gather(1, matches)
        return torch.where(crowd & (labelled >= 0), IGNORE, labelled)
