"""Detection confusion matrix: which class each detection was given against the class of the box it found."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import box_iou


def detection_confusion_matrix(
    preds: Sequence[dict[str, Tensor]],
    target: Sequence[dict[str, Tensor]],
    num_classes: int,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.25,
) -> Tensor:
    """Count detections against ground truth, with a background row and column.

    Per image, detections with ``score >= score_threshold`` are taken in decreasing score order (ties keep input
    order). Each takes the unmatched ground-truth box of its own class with the highest IoU ``>= iou_threshold``
    (counted on the diagonal); failing that, the unmatched box of another class with the highest such IoU (a class
    confusion, off the diagonal); failing that, if it overlaps an ignored (``iscrowd`` / ``difficult``) box that
    much it is not counted, else it is a false positive (row ``K``, "background"). Ground-truth boxes left unmatched
    are missed (column ``K``). Ignored boxes are never counted.

    Args:
        preds: per image ``boxes`` (``float[N, 4]`` xyxy), ``scores`` (``float[N]``), ``labels`` (``int[N]`` in
            ``0..K-1``).
        target: per image ``boxes`` (``float[M, 4]`` xyxy), ``labels`` (``int[M]``), optionally ``iscrowd`` /
            ``difficult`` (``bool[M]``).
        num_classes: ``K``.
        iou_threshold: the IoU a detection needs to find a box.
        score_threshold: detections below it are left out.

    Returns:
        ``int64[K + 1, K + 1]``: ``matrix[t, p]`` counts boxes of true class ``t`` found by a detection of class
        ``p``; row ``K`` holds false positives by predicted class, column ``K`` missed boxes by true class.

    Raises:
        ValueError: for ``preds`` and ``target`` of different lengths or a label outside ``0..K-1``.
    """
    if len(preds) != len(target):
        raise ValueError(f"preds and target must have the same length, got {len(preds)} and {len(target)}")
    background = num_classes
    matrix = torch.zeros(num_classes + 1, num_classes + 1, dtype=torch.int64)
    for i, (p, t) in enumerate(zip(preds, target)):
        keep = p["scores"].detach().cpu() >= score_threshold
        order = torch.sort(p["scores"].detach().cpu()[keep], descending=True, stable=True).indices
        det_boxes = p["boxes"].detach().cpu().double()[keep][order]
        det_labels = _labels(p["labels"].detach().cpu()[keep][order], num_classes, f"preds[{i}]")
        gt_boxes = t["boxes"].detach().cpu().double().reshape(-1, 4)
        gt_labels = _labels(t["labels"].detach().cpu(), num_classes, f"target[{i}]")
        ignored = torch.zeros(len(gt_labels), dtype=torch.bool)
        for key in ("iscrowd", "difficult"):
            if key in t:
                ignored |= t[key].detach().cpu().reshape(-1).bool()
        iou = box_iou(det_boxes, gt_boxes) if len(det_boxes) and len(gt_boxes) else torch.zeros(len(det_boxes), 0)
        overlaps = iou >= iou_threshold
        free = ~ignored
        for d in range(len(det_boxes)):
            same = overlaps[d] & free & (gt_labels == det_labels[d])
            candidates = same if same.any() else overlaps[d] & free
            if candidates.any():
                g = int(torch.where(candidates, iou[d], -1.0).argmax())
                matrix[gt_labels[g], det_labels[d]] += 1
                free[g] = False
            elif not (overlaps[d] & ignored).any():
                matrix[background, det_labels[d]] += 1
        missed = free & ~ignored
        matrix[:, background] += torch.bincount(gt_labels[missed], minlength=num_classes + 1)
    return matrix


def _labels(labels: Tensor, num_classes: int, where: str) -> Tensor:
    labels = labels.reshape(-1).long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{where}['labels'] has labels {labels.unique().tolist()} outside 0..{num_classes - 1}")
    return labels
