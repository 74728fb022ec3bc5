"""Batched RetinaNet post-processing: top-k per level, box decoding, one NMS call for the whole batch."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import nms

from lightning_retina.box_coder import BoxCoder


@torch.no_grad()
def postprocess_detections(
    cls_logits: Tensor,
    bbox_regression: Tensor,
    anchors: Tensor,
    num_anchors_per_level: list[int],
    image_sizes: list[tuple[int, int]],
    box_coder: BoxCoder,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    topk_candidates: int = 1000,
) -> list[dict[str, Tensor]]:
    """Turn dense head outputs into detections, for all images at once (same result as torchvision's loop).

    Per image and pyramid level, the ``topk_candidates`` highest (anchor, class) scores above ``score_thresh``
    are decoded and clipped to the image; then class-wise NMS runs once over every image of the batch
    (images are kept apart by offsetting the NMS group ids), and the ``detections_per_img`` best survive.
    Runs in float32 (there is no bf16 NMS kernel, and IoU overflows in fp16).

    Args:
        cls_logits: ``Tensor[B, A, K]`` classification logits.
        bbox_regression: ``Tensor[B, A, 4]`` encoded box deltas.
        anchors: ``Tensor[B, A, 4]`` (or ``[A, 4]``, shared) anchors in the resized-image frame.
        num_anchors_per_level: ``A`` split over the pyramid levels, in order.
        image_sizes: ``(height, width)`` of each resized image (before padding), to clip boxes.
        box_coder: decodes deltas against anchors.
        score_thresh: minimum score (exclusive, as torchvision).
        nms_thresh: IoU threshold of the class-wise NMS.
        detections_per_img: maximum detections per image.
        topk_candidates: candidates per level before NMS.

    Returns:
        list of ``B`` dicts: ``boxes`` ``[N, 4]`` xyxy (resized-image frame), ``scores`` ``[N]`` sorted descending,
        ``labels`` ``[N]`` (int64, ``0..K-1``).
    """
    batch, _, num_classes = cls_logits.shape
    device = cls_logits.device
    cls_logits, bbox_regression = cls_logits.float(), bbox_regression.float()
    anchors = anchors.float().expand(batch, -1, -1) if anchors.ndim == 2 else anchors.float()

    scores, anchor_idx, labels = _level_top_candidates(cls_logits, num_anchors_per_level, topk_candidates)

    image_idx, cand = torch.nonzero(scores > score_thresh, as_tuple=True)
    scores, labels = scores[image_idx, cand], labels[image_idx, cand]
    anchor_idx = anchor_idx[image_idx, cand]
    boxes = box_coder.decode_single(bbox_regression[image_idx, anchor_idx], anchors[image_idx, anchor_idx])
    sizes = torch.tensor(image_sizes, dtype=boxes.dtype, device=device)[image_idx]  # [N, 2] (h, w)
    boxes = torch.minimum(boxes.clamp(min=0), sizes[:, [1, 0, 1, 0]])

    keep = _groupwise_nms(boxes, scores, image_idx * num_classes + labels, nms_thresh)
    keep = keep[torch.sort(scores[keep], descending=True, stable=True).indices]
    keep = keep[torch.sort(image_idx[keep], stable=True).indices]  # grouped by image, score order within
    counts = torch.bincount(image_idx[keep], minlength=batch)
    rank = torch.arange(keep.numel(), device=device) - (torch.cumsum(counts, 0) - counts).repeat_interleave(counts)
    keep = keep[rank < detections_per_img]
    per_image = counts.clamp(max=detections_per_img).tolist()
    return [
        {"boxes": b, "scores": s, "labels": lab}
        for b, s, lab in zip(boxes[keep].split(per_image), scores[keep].split(per_image), labels[keep].split(per_image))
    ]


def postprocess_detections_padded(
    cls_logits: Tensor,
    bbox_regression: Tensor,
    anchors: Tensor,
    num_anchors_per_level: list[int],
    image_size: tuple[int, int],
    box_coder: BoxCoder,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    topk_candidates: int = 1000,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`postprocess_detections` for a batch of equal-sized images, as fixed-shape tensors (exportable).

    The same candidates, decoding, clipping, class-wise NMS and ranking, written without data-dependent shapes or
    Python loops over data so that TorchScript, ONNX and ``torch.export`` can trace it: candidates under the score
    threshold are kept in place with score -1 (they rank after every real candidate, so they suppress nothing), one
    NMS call separates images and classes by offsetting the boxes (torchvision's ``batched_nms`` coordinate trick), and
    each image's ``detections_per_img`` best survivors fill a padded output.

    Args:
        cls_logits: ``Tensor[B, A, K]``.
        bbox_regression: ``Tensor[B, A, 4]``.
        anchors: ``Tensor[A, 4]``, shared by the batch (resized-image frame).
        num_anchors_per_level: ``A`` split over the pyramid levels.
        image_size: ``(height, width)`` of the resized images (before padding), to clip boxes.
        box_coder: decodes deltas against anchors.
        score_thresh: minimum score (exclusive).
        nms_thresh: IoU threshold of the class-wise NMS.
        detections_per_img: ``D``, the padded output length (at most the number of candidates).
        topk_candidates: candidates per level before NMS.

    Returns:
        ``(boxes [B, D, 4], scores [B, D], labels [B, D], counts [B])``: the first ``counts[b]`` rows of image ``b``
        are its detections, by descending score; the rest are zeros with label -1.
    """
    batch, _, num_classes = cls_logits.shape
    scores, anchor_idx, labels = _level_top_candidates(cls_logits.float(), num_anchors_per_level, topk_candidates)
    candidates = scores.shape[1]
    deltas = bbox_regression.float().gather(1, anchor_idx.unsqueeze(-1).expand(-1, -1, 4))  # [B, C, 4]
    boxes = box_coder.decode_single(deltas.reshape(-1, 4), anchors.float()[anchor_idx.reshape(-1)])
    height, width = image_size
    limits = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    boxes = torch.minimum(boxes.clamp(min=0), limits).reshape(batch, candidates, 4)
    valid = scores > score_thresh
    group = torch.arange(batch, device=labels.device).unsqueeze(1) * num_classes + labels  # [B, C]
    offsets = group.to(boxes.dtype).mul(float(max(height, width) + 1)).unsqueeze(-1)
    nms_scores = torch.where(valid, scores, torch.full_like(scores, -1.0)).reshape(-1)
    keep = nms((boxes + offsets).reshape(-1, 4), nms_scores, nms_thresh)
    kept = torch.zeros_like(nms_scores).scatter(0, keep, 1.0).reshape(batch, candidates) > 0
    ranked = torch.where(kept & valid, scores, torch.full_like(scores, -1.0))
    top_scores, top = ranked.topk(min(detections_per_img, candidates), dim=1)  # [B, D], descending
    found = top_scores >= 0
    top_boxes = boxes.gather(1, top.unsqueeze(-1).expand(-1, -1, 4)) * found.unsqueeze(-1)
    top_labels = torch.where(found, labels.gather(1, top), torch.full_like(top, -1))
    return top_boxes, top_scores * found, top_labels, found.sum(dim=1)


def _level_top_candidates(
    cls_logits: Tensor, num_anchors_per_level: list[int], topk_candidates: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The ``topk_candidates`` best (anchor, class) pairs of each level: ``(scores, anchor index, label)``, ``[B, C]``."""
    num_classes = cls_logits.shape[-1]
    scores, anchor_idx, labels = [], [], []
    for logits_level, offset in zip(cls_logits.split(num_anchors_per_level, dim=1), _offsets(num_anchors_per_level)):
        flat = logits_level.flatten(1)  # [B, A_l * K]
        top_logits, top_idx = flat.topk(min(topk_candidates, flat.shape[1]), dim=1)  # sigmoid is monotone
        scores.append(torch.sigmoid(top_logits))
        anchor_idx.append(torch.div(top_idx, num_classes, rounding_mode="floor") + offset)
        labels.append(top_idx % num_classes)
    return torch.cat(scores, 1), torch.cat(anchor_idx, 1), torch.cat(labels, 1)


def _groupwise_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the boxes that survive NMS within their group (``torchvision.ops.batched_nms``, unsorted).

    The boxes are put in group order once and NMS runs on each group's contiguous slice, instead of searching
    all boxes for each group as torchvision's per-class loop does.
    """
    order = torch.sort(groups, stable=True).indices
    boxes, scores = boxes[order], scores[order]
    counts = torch.unique_consecutive(groups[order], return_counts=True)[1].tolist()
    kept, start = [], 0
    for count in counts:
        kept.append(nms(boxes[start : start + count], scores[start : start + count], iou_threshold) + start)
        start += count
    return order[torch.cat(kept)] if kept else order


def _offsets(sizes: list[int]) -> list[int]:
    out, total = [], 0
    for s in sizes:
        out.append(total)
        total += s
    return out
