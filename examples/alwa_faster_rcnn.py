"""ALWA on torchvision Faster R-CNN: any torchvision detector becomes a LightningModule with TorchvisionDetector.

:class:`~lightning_retina.detectors.TorchvisionDetector` follows the weighted-loss contract (``loss_weights`` keyed by
the model's own loss names; ``training_step`` returns ``"loss"`` plus each raw loss), shifts the labels ``0..K-1``
past Faster R-CNN's background class and back, and brings the optimizer, lr schedule and validation mAP. Faster
R-CNN has two (classification, regression) pairs, so ALWA gets two groups: the ROI head and the RPN, each with its
own classification weight. Trains a few steps on random images with random boxes::

    python examples/alwa_faster_rcnn.py --max-steps 20
"""

import argparse

import torch
from lightning.pytorch import Trainer
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

from lightning_retina.callbacks import ALWA
from lightning_retina.detectors import TorchvisionDetector

GROUPS = [("loss_classifier", "loss_box_reg"), ("loss_objectness", "loss_rpn_box_reg")]


def build_faster_rcnn(num_classes: int = 3, image_size: int = 128) -> FasterRCNN:
    """torchvision Faster R-CNN, ResNet-18 FPN from scratch, for ``num_classes`` foreground classes (+ background)."""
    # from scratch: real BatchNorm, not torchvision's default FrozenBatchNorm2d (which would be an identity)
    backbone = resnet_fpn_backbone(
        backbone_name="resnet18", weights=None, trainable_layers=5, norm_layer=nn.BatchNorm2d
    )
    return FasterRCNN(
        backbone,
        num_classes=num_classes + 1,
        min_size=image_size,
        max_size=image_size,
        # small images with a few objects: fewer proposals and sampled RoIs than the COCO defaults
        rpn_pre_nms_top_n_train=500,
        rpn_post_nms_top_n_train=200,
        box_batch_size_per_image=128,
    )


class RandomBoxes(Dataset):
    """Images ``[3, S, S]`` of noise with 1–3 bright rectangles, the rectangles as xyxy boxes, labels in 0..K-1."""

    def __init__(self, length: int, image_size: int = 128, num_classes: int = 3) -> None:
        self.length, self.image_size, self.num_classes = length, image_size, num_classes

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        gen = torch.Generator().manual_seed(index)
        size = self.image_size
        image = torch.rand(3, size, size, generator=gen) * 0.3
        num_boxes = int(torch.randint(1, 4, (1,), generator=gen))
        wh = torch.randint(size // 8, size // 2, (num_boxes, 2), generator=gen)
        x1y1 = (torch.rand(num_boxes, 2, generator=gen) * (size - wh)).long()
        boxes = torch.cat([x1y1, x1y1 + wh], dim=1)
        labels = torch.randint(0, self.num_classes, (num_boxes,), generator=gen)
        for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist()):
            image[label % 3, y1:y2, x1:x2] = 1.0  # the class shows as a colour
        return image, {"boxes": boxes.float(), "labels": labels}


def collate(batch: list[tuple[Tensor, dict[str, Tensor]]]) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    images, targets = zip(*batch)
    return list(images), list(targets)


def main(
    max_steps: int = 20,
    batch_size: int = 2,
    interval: int = 2,
    accelerator: str = "auto",
    default_root_dir: str = "lightning_logs_alwa",
) -> TorchvisionDetector:
    """Train a few steps with ALWA on both groups; return the module (its ``loss_weights`` hold the ALWA weights)."""
    torch.manual_seed(0)
    module = TorchvisionDetector(build_faster_rcnn(), lr=0.01, warmup_steps=0, metric=None)
    data = DataLoader(RandomBoxes(max_steps * batch_size), batch_size=batch_size, shuffle=True, collate_fn=collate)
    trainer = Trainer(
        max_steps=max_steps,
        accelerator=accelerator,
        devices=1,
        callbacks=[ALWA(interval=interval, groups=GROUPS)],
        enable_checkpointing=False,
        default_root_dir=default_root_dir,
        log_every_n_steps=1,
    )
    trainer.fit(module, data)
    print({key: round(weight, 4) for key, weight in module.loss_weights.items()})
    return module


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--interval", type=int, default=2, help="ALWA update interval C in optimizer steps")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--default-root-dir", default="lightning_logs_alwa")
    args = parser.parse_args()
    main(args.max_steps, args.batch_size, args.interval, args.accelerator, args.default_root_dir)
