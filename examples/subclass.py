"""Subclass RetinaNetModule in your own project: a different loss and a lighter head.

Run: ``python examples/subclass.py`` (a few CPU steps on random boxes, prints the losses).

Two common customisations are shown:

1. ``compute_losses``: add a loss term (a GIoU term on decoded boxes on top of smooth-L1),
   keeping the weighted-loss contract so ALWA still works.
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


class GIoUAuxModule(RetinaNetModule):
    """Smooth-L1 on deltas plus a GIoU term on decoded boxes, logged as its own loss (``loss_giou``)."""

    def __init__(self, *args, giou_weight: float = 0.5, depth: int = 2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        anchors_per_location = self.model.anchor_generator.num_anchors_per_location()[0]
        self.model.head = ShallowHead(self.model.backbone.out_channels, anchors_per_location, self.num_classes, depth)
        self.giou_loss_fn = RetinaNetLoss(cls_loss=self.hparams.cls_loss, reg_loss="giou")
        self.loss_weights["loss_giou"] = giou_weight

    def compute_losses(self, images, targets, heads=None):
        out = heads if heads is not None else self.forward_heads(images, targets)
        losses = self.loss_fn(out.head_outputs, out.anchors, out.targets)
        losses["loss_giou"] = self.giou_loss_fn(out.head_outputs, out.anchors, out.targets)["loss_reg"]
        return losses


def _random_batch(size: int = 128, n: int = 4):
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, size, size, generator=g) for _ in range(n)]
    xy = torch.rand(n, 2, generator=g) * size / 2
    targets = [
        {"boxes": torch.cat([p, p + size / 3]).reshape(1, 4), "labels": torch.tensor([i % 3])} for i, p in enumerate(xy)
    ]
    return images, targets


def main(max_steps: int = 4) -> GIoUAuxModule:
    """Train the subclass for ``max_steps`` steps with ALWA on the (loss_cls, loss_reg) pair."""
    module = GIoUAuxModule(num_classes=3, backbone="resnet18", min_size=128, max_size=128, metric=None, warmup_steps=0)
    batch = _random_batch()
    loader = DataLoader([batch] * max_steps, batch_size=None)
    trainer = Trainer(max_steps=max_steps, callbacks=[ALWA(interval=2)], logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    with torch.no_grad():
        losses = module.compute_losses(*batch)
    print({k: round(float(v), 4) for k, v in losses.items()}, module.loss_weights)
    return module


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=4)
    main(parser.parse_args().max_steps)
