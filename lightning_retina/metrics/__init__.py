"""Detection metrics: Pascal VOC mAP (COCO mAP comes from ``torchmetrics.detection.MeanAveragePrecision``)."""

from lightning_retina.metrics.voc import VOCMeanAveragePrecision

__all__ = ["VOCMeanAveragePrecision"]
