"""Pascal VOC and COCO readers, the synthetic shapes set, transforms and the DetectionDataModule."""

from lightning_retina.data.coco import COCODetection
from lightning_retina.data.collate import collate_detection
from lightning_retina.data.datamodule import DetectionDataModule
from lightning_retina.data.image_io import DEFAULT_MAX_PIXELS, ImageWarning, decode_image
from lightning_retina.data.synthetic import SHAPES_CLASSES, make_shapes_dataset
from lightning_retina.data.transforms import eval_transforms, train_transforms
from lightning_retina.data.voc import VOC_CLASSES, VOCDetection

__all__ = [
    "COCODetection",
    "DEFAULT_MAX_PIXELS",
    "DetectionDataModule",
    "ImageWarning",
    "SHAPES_CLASSES",
    "VOCDetection",
    "VOC_CLASSES",
    "collate_detection",
    "decode_image",
    "eval_transforms",
    "make_shapes_dataset",
    "train_transforms",
]
