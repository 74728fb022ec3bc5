"""Which mAP metric a RetinaNetModule evaluates with: COCO (torchmetrics) or VOC (ours)."""

from __future__ import annotations

from importlib.util import find_spec

from torch import Tensor
from torchmetrics import Metric

from lightning_retina.metrics import COCOMeanAveragePrecision, VOCMeanAveragePrecision

METRICS = ("coco", "voc", "voc07")


def coco_backend() -> str:
    """``"faster_coco_eval"`` when installed (several times faster, same AP), else ``"pycocotools"``."""
    return "faster_coco_eval" if find_spec("faster_coco_eval") is not None else "pycocotools"


def build_metric(kind: str, class_metrics: bool = False) -> Metric:
    """A fresh detection metric.

    Args:
        kind: ``"coco"`` (:class:`COCOMeanAveragePrecision`: torchmetrics' AP@[.5:.95], DDP-safe with uneven
            shards), ``"voc"`` (VOC devkit AP@0.5, area under the interpolated PR curve) or ``"voc07"`` (VOC2007
            11-point AP@0.5).
        class_metrics: also compute per-class AP (COCO: slower).

    Raises:
        ValueError: for an unknown kind.
    """
    if kind == "coco":
        return COCOMeanAveragePrecision(
            box_format="xyxy", iou_type="bbox", class_metrics=class_metrics, backend=coco_backend()
        )
    if kind in ("voc", "voc07"):
        return VOCMeanAveragePrecision(iou_threshold=0.5, use_07_metric=kind == "voc07")
    raise ValueError(f"Unknown metric {kind!r}; expected one of {METRICS} or None")


def metric_target(target: dict[str, Tensor]) -> dict[str, Tensor]:
    """The ground truth a metric needs: boxes and labels, plus ``iscrowd`` / ``difficult`` / ``area`` when present.

    ``area`` (COCO's annotation area, ``float[M]``) decides small / medium / large as in pycocotools' ``COCOeval``;
    without it the box area is used.

    VOC ``difficult`` objects become COCO ``iscrowd`` regions for the COCO metric (neither found nor missed), as
    the VOC devkit treats them.
    """
    out = {k: target[k] for k in ("boxes", "labels", "iscrowd", "difficult", "area") if k in target}
    if "difficult" in out and "iscrowd" not in out:
        out["iscrowd"] = out["difficult"]
    return out
