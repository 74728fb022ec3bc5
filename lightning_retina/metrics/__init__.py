"""Detection metrics: Pascal VOC mAP, COCO mAP equal to pycocotools (DDP-safe), the metric factory and log keys."""

from lightning_retina.metrics.coco import COCOMeanAveragePrecision
from lightning_retina.metrics.factory import (
    LOG_KEYS,
    METRICS,
    build_metric,
    coco_backend,
    compute_for_logging,
    metric_log_dict,
    metric_target,
)
from lightning_retina.metrics.voc import VOCMeanAveragePrecision

__all__ = [
    "COCOMeanAveragePrecision",
    "LOG_KEYS",
    "METRICS",
    "VOCMeanAveragePrecision",
    "build_metric",
    "coco_backend",
    "compute_for_logging",
    "metric_log_dict",
    "metric_target",
]
