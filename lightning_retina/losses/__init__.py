"""Detection losses as pure functions (``torchvision.ops`` style) and the batched RetinaNet loss."""

from lightning_retina.losses.box import ciou_loss, diou_loss, giou_loss, iou_loss, l1_loss, smooth_l1_loss
from lightning_retina.losses.focal import sigmoid_focal_loss
from lightning_retina.losses.retinanet import RetinaNetLoss

__all__ = [
    "sigmoid_focal_loss",
    "l1_loss",
    "smooth_l1_loss",
    "iou_loss",
    "giou_loss",
    "diou_loss",
    "ciou_loss",
    "RetinaNetLoss",
]
