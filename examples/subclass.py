"""Subclass RetinaNetModule in your own project: a different loss and a lighter head.

Run: ``python examples/subclass.py`` (a few CPU steps on random boxes, prints the losses).

Two common customisations are shown:

1. ``loss_fn``: add a loss term (a GIoU term on decoded boxes on top of smooth-L1) by wrapping the loss, so
   training and validation both compute it, with a ``loss_weights`` entry of its own: the weighted-loss contract
   (every loss has a weight) holds and ALWA still works.
2. ``__init__``: swap torchvision's RetinaNet head for a shallower one (2 convs instead of 4).
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models.detection.retinanet import RetinaNetClassificationHead, RetinaNetHead, RetinaNetRegressionHead

from lightning_retina import RetinaNetModule
from lightning_retina.callbacks import ALWA
from lightning_retina.losses import RetinaNetLoss


class ShallowHead(RetinaNetHead):
    """RetinaNet head with ``depth`` convs per branch instead of 4 (GroupNorm), same outputs."""

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, depth: int = 2) -> None:
        nn.Module.__init__(self)
        norm = partial(nn.GroupNorm, 32)
        self.classification_head = RetinaNetClassificationHead(in_channels, num_anchors, num_classes, norm_layer=norm)
        self.regression_head = RetinaNetRegressionHead(in_channels, num_anchors, norm_layer=norm)
        for branch in (self.classification_head, self.regression_head):
            branch.conv = branch.conv[: 3 * depth]  # each block is conv, norm, relu


class PlusGIoU(nn.Module):
    """A RetinaNet loss plus the ``loss_reg`` of a GIoU :class:`RetinaNetLoss`, returned as ``loss_giou``."""

    def __init__(self, base: RetinaNetLoss, cls_loss: str) -> None:
        super().__init__()
        self.base = base
        self.giou = RetinaNetLoss(cls_loss=cls_loss, reg_loss="giou")
        self.box_coder = base.box_coder  # what inference decodes with

    def forward(self, head_outputs, anchors, targets):
        losses = self.base(head_outputs, anchors, targets)
        losses["loss_giou"] = self.giou(head_outputs, anchors, targets)["loss_reg"]
        return losses


class GIoUAuxModule(RetinaNetModule):
    """Smooth-L1 on deltas plus a GIoU term on decoded boxes, logged as its own loss (``loss_giou``)."""

    def __init__(self, *args, giou_weight: float = 0.5, depth: int = 2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        anchors_per_location = self.model.anchor_generator.num_anchors_per_location()[0]
        self.model.head = ShallowHead(self.model.backbone.out_channels, anchors_per_location, self.num_classes, depth)
        self.loss_fn = PlusGIoU(self.loss_fn, self.hparams.cls_loss)
        self.loss_weights["loss_giou"] = giou_weight


def _random_batch(size: int = 128, n: int = 4):
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, size, size, generator=g) for _ in range(n)]
    xy = torch.rand(n, 2, generator=g) * size / 2
    targets = [
        {"boxes": torch.cat([p, p + size / 3]).reshape(1, 4), "labels": torch.tensor([i % 3])} for i, p in enumerate(xy)
    ]
    return images, targets


def main(max_steps: int = 4) -> tuple[GIoUAuxModule, dict[str, float]]:
    """Train the subclass for ``max_steps`` steps with ALWA on the (loss_cls, loss_reg) pair, then validate it.

    Returns:
        the module and the validation metrics (``val/loss``, ``val/loss_giou``, ``val/map``, ...).
    """
    module = GIoUAuxModule(num_classes=3, backbone="resnet18", min_size=128, max_size=128, metric="voc",
                           warmup_steps=0)  # fmt: skip
    batch = _random_batch()
    loader = DataLoader([batch] * max_steps, batch_size=None)
    trainer = Trainer(max_steps=max_steps, callbacks=[ALWA(interval=2)], logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader, DataLoader([batch], batch_size=None))
    (metrics,) = trainer.validate(module, DataLoader([batch], batch_size=None), verbose=False)
    print({k: round(float(v), 4) for k, v in metrics.items()}, module.loss_weights)
    return module, metrics


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=4)
    main(parser.parse_args().max_steps)
