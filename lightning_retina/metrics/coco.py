"""COCO mAP (torchmetrics ``MeanAveragePrecision``) equal to pycocotools' ``COCOeval``, DDP-safe with uneven shards."""

from __future__ import annotations

from typing import Any

import numpy as np
from torchmetrics.detection import MeanAveragePrecision

from lightning_retina._compat import GatherListStatesOnce

# pycocotools' ``Params.setDetParams`` thresholds, built the same way in float64. torchmetrics' defaults come from
# ``torch.linspace`` in float32 (0.0099999998 for 0.01): a recall or IoU that equals a threshold then lands on the
# other side of it, and AP differs from COCOeval by up to ~5e-3.
COCO_IOU_THRESHOLDS: list[float] = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1).tolist()
COCO_REC_THRESHOLDS: list[float] = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1).tolist()


class COCOMeanAveragePrecision(GatherListStatesOnce, MeanAveragePrecision):
    """``torchmetrics.detection.MeanAveragePrecision`` with pycocotools' exact thresholds and a DDP-safe sync.

    Every scalar (``map``, ``map_50``, ``map_75``, ``map_small/medium/large``, ``mar_1/10/100``,
    ``mar_small/medium/large``) equals pycocotools' ``COCOeval`` (bbox) on the same data up to the float32 rounding of
    the result (tested to 1e-6, with both backends): the default IoU and recall thresholds are pycocotools' float64
    ones (:data:`COCO_IOU_THRESHOLDS`, :data:`COCO_REC_THRESHOLDS`) instead of torchmetrics' float32 ones.
    small/medium/large use a target's ``area`` (``float[M]``, the annotation's segment area in COCO files) where it
    is given and positive, else the box area, as COCOeval uses the annotation's ``area`` field.

    Feeding it a COCO file: read it with :class:`~lightning_retina.data.COCODetection` (every image kept, ``area``
    carried), not torchmetrics' ``coco_to_tm``, which leaves out images without annotations and with them their
    detections (false positives): AP comes out higher than COCOeval's (+0.04 map on a 10-image case with 2 such
    images). What the reader changes stays a difference from COCOeval on the raw file: it drops zero-area boxes
    (COCOeval counts them as missed) and clips boxes reaching at most one pixel past the image border.

    torchmetrics keeps one tensor per image in list states without a reduction and gathers them one tensor at a
    time, so two processes that evaluated 3 and 2 images (an unpadded evaluation sampler, which a correct mAP needs)
    issue different numbers of collectives: gloo aborts and NCCL hangs. Here every state list is gathered with a
    single ``all_gather_object`` per state, the same number of calls on every process whatever it holds, and the
    lists are concatenated in rank order (the AP does not depend on the order of images): the mixin
    :class:`~lightning_retina._compat.GatherListStatesOnce`. Arguments and results
    are those of the parent class.
    """

    def __init__(
        self,
        iou_thresholds: list[float] | None = None,
        rec_thresholds: list[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            iou_thresholds=list(COCO_IOU_THRESHOLDS if iou_thresholds is None else iou_thresholds),
            rec_thresholds=list(COCO_REC_THRESHOLDS if rec_thresholds is None else rec_thresholds),
            **kwargs,
        )
