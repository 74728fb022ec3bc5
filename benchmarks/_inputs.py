"""Synthetic inputs shared by the loss and post-processing benchmarks: anchors, head outputs, targets."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.image_list import ImageList

from lightning_retina import RetinaNetModule
from lightning_retina.model import DEFAULT_ANCHOR_SIZES, make_anchor_generator

NUM_LEVELS = 5


class Setting(NamedTuple):
    """One benchmark setting: ``batch`` square images of ``size`` px, ``classes`` classes, ``boxes`` boxes per image."""

    batch: int
    size: int
    classes: int
    boxes: int

    def label(self) -> str:
        return f"B={self.batch} {self.size}px K={self.classes} {self.boxes} boxes"


def feature_sizes(size: int) -> list[int]:
    """Side of the P3…P7 feature maps of a ResNet-FPN for a ``size`` px square input (strides 8…128, rounded up)."""
    side = math.ceil(size / 8)
    sides = []
    for _ in range(NUM_LEVELS):
        sides.append(side)
        side = math.ceil(side / 2)
    return sides


def make_anchors(size: int, device: torch.device | str = "cpu") -> tuple[Tensor, list[int]]:
    """RetinaNet's anchors (sizes 32…512, 9 per location) of a ``size`` px square image.

    Returns:
        ``Tensor[A, 4]`` xyxy and the number of anchors per level.
    """
    generator = make_anchor_generator(DEFAULT_ANCHOR_SIZES)
    image = torch.empty(1, 3, size, size, device=device)
    grids = [torch.empty(0, 0, s, s, device=device) for s in feature_sizes(size)]
    anchors = generator(ImageList(image, [(size, size)]), grids)[0]
    per_level = [s * s * generator.num_anchors_per_location()[0] for s in feature_sizes(size)]
    return anchors, per_level


def make_targets(
    setting: Setting, generator: torch.Generator, device: torch.device | str = "cpu"
) -> list[dict[str, Tensor]]:
    """``setting.boxes`` random boxes (16 px to half the image wide) with random labels, per image."""
    targets = []
    for _ in range(setting.batch):
        n, size = setting.boxes, setting.size
        wh = 16 + torch.rand(n, 2, generator=generator) * (size / 2 - 16)
        xy = torch.rand(n, 2, generator=generator) * (size - wh)
        boxes = torch.cat([xy, xy + wh], dim=1)
        labels = torch.randint(0, setting.classes, (n,), generator=generator)
        targets.append({"boxes": boxes.to(device), "labels": labels.to(device)})
    return targets


def make_head_outputs(
    setting: Setting,
    num_anchors: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    logit_mean: float = -3.0,
) -> dict[str, Tensor]:
    """Random head outputs: ``cls_logits`` ``[B, A, K]`` ~ N(logit_mean, 1.5²), ``bbox_regression`` ``[B, A, 4]``
    ~ N(0, 0.5²)."""
    logits = torch.randn(setting.batch, num_anchors, setting.classes, generator=generator) * 1.5 + logit_mean
    deltas = torch.randn(setting.batch, num_anchors, 4, generator=generator) * 0.5
    return {"cls_logits": logits.to(device), "bbox_regression": deltas.to(device)}


def torchvision_retinanet(num_classes: int, **settings: Any) -> RetinaNet:
    """torchvision's own ``RetinaNet`` (its per-image matcher, loss and post-processing), built with the network of
    ``RetinaNetModule(num_classes, **settings)``: the reference every benchmark compares with."""
    return RetinaNetModule(num_classes=num_classes, metric=None, **settings).model.to_torchvision()
