"""Detections as COCO results entries (the format of ``pycocotools.COCO.loadRes`` and the COCO evaluation server)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor


def coco_results(
    detections: Mapping[str, Tensor],
    image_id: int,
    label_to_category_id: Mapping[int, int] | None = None,
    class_names: Sequence[str] | None = None,
    score_thresh: float = 0.0,
    **extra: Any,
) -> list[dict[str, Any]]:
    """One COCO results entry per detection of one image.

    Args:
        detections: ``boxes`` ``[N, 4]`` xyxy in original-image pixels, ``scores`` ``[N]``, ``labels`` ``[N]``.
        image_id: the image's id (the data set's COCO id where there is one).
        label_to_category_id: the data set's category id of each label (e.g.
            :attr:`~lightning_retina.data.COCODetection.label_to_category_id`); ``None``: the label itself.
        class_names: names indexed by label; adds ``category_name`` to each entry.
        score_thresh: detections below this score are left out.
        **extra: more keys copied into every entry (e.g. ``file_name``).

    Returns:
        ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score", ("category_name"), **extra}, ...]`` in the
        detections' order, values as Python numbers (no rounding, so evaluating the file equals evaluating the
        tensors).
    """
    keep = detections["scores"] >= score_thresh
    boxes = detections["boxes"][keep].detach().double().cpu()
    xywh = boxes.clone()
    xywh[:, 2:] -= boxes[:, :2]
    entries = []
    for box, score, label in zip(
        xywh.tolist(), detections["scores"][keep].tolist(), detections["labels"][keep].tolist()
    ):
        label = int(label)
        entry: dict[str, Any] = {
            "image_id": image_id,
            "category_id": int(label_to_category_id[label]) if label_to_category_id is not None else label,
            "bbox": box,
            "score": float(score),
        }
        if class_names is not None:
            entry["category_name"] = class_names[label]
        entries.append({**entry, **extra})
    return entries
