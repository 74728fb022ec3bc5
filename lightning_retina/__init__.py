"""lightning-retina: RetinaNet, focal/IoU-family losses, ALWA and VOC/COCO data for PyTorch Lightning."""

from lightning_retina.callbacks import ALWA
from lightning_retina.data import DetectionDataModule
from lightning_retina.losses import RetinaNetLoss
from lightning_retina.metrics import COCOMeanAveragePrecision, VOCMeanAveragePrecision
from lightning_retina.model import RetinaNetCore
from lightning_retina.module import RetinaNetModule

__version__ = "0.1.0"

__all__ = [
    "RetinaNetModule",
    "RetinaNetLoss",
    "RetinaNetCore",
    "ALWA",
    "DetectionDataModule",
    "COCOMeanAveragePrecision",
    "VOCMeanAveragePrecision",
    "__version__",
]
