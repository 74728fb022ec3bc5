"""Detection metrics: Pascal VOC mAP, and COCO mAP (torchmetrics) that syncs uneven DDP shards."""

from lightning_retina.metrics.coco import COCOMeanAveragePrecision
from lightning_retina.metrics.voc import VOCMeanAveragePrecision

__all__ = ["COCOMeanAveragePrecision", "VOCMeanAveragePrecision"]
