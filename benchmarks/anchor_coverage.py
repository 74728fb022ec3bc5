"""How well RetinaNet's anchors cover a data set's boxes: the check behind the ablation's anchor sizes.

An object trains the box head only through the anchors matched to it at IoU >= 0.5 (the paper's foreground
threshold); an object that overlaps none gets one low-quality match at best. Anchors smaller than their level's
stride leave most objects so: ``python -m benchmarks.anchor_coverage ROOT --input-size 96`` prints, for the demo's
anchors and for anchors twice the stride, the share of boxes with an anchor at IoU >= 0.5, the median best IoU and
the mean number of such anchors per box.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from lightning_retina.data import SHAPES_CLASSES, VOCDetection
from lightning_retina.demo import demo_anchor_sizes
from lightning_retina.model import make_anchor_generator

STRIDES = (8, 16, 32, 64, 128)  # P3…P7


@dataclass(frozen=True)
class Coverage:
    """Anchor coverage of a set of boxes.

    Attributes:
        boxes: boxes counted.
        covered: share of boxes with at least one anchor at IoU >= ``fg_iou``.
        median_best_iou: median over boxes of the best anchor IoU.
        positives_per_box: mean number of anchors at IoU >= ``fg_iou`` per box.
    """

    boxes: int
    covered: float
    median_best_iou: float
    positives_per_box: float


def image_anchors(input_size: int, anchor_sizes: Sequence[int]) -> torch.Tensor:
    """The anchors ``[A, 4]`` (xyxy) of a square ``input_size`` image, as the detector lays them on P3…P7."""
    generator = make_anchor_generator(tuple(anchor_sizes))
    side = [max(1, -(-input_size // stride)) for stride in STRIDES]  # the FPN's map sizes (ceil)
    features = [torch.zeros(1, 1, s, s) for s in side]
    return generator(ImageList(torch.zeros(1, 3, input_size, input_size), [(input_size, input_size)]), features)[0]


def anchor_coverage(boxes: torch.Tensor, anchors: torch.Tensor, fg_iou: float = 0.5) -> Coverage:
    """Coverage of ``boxes`` ``[N, 4]`` by ``anchors`` ``[A, 4]`` (both xyxy in the input frame)."""
    if len(boxes) == 0:
        return Coverage(0, float("nan"), float("nan"), float("nan"))
    iou = box_iou(boxes, anchors)
    best = iou.max(dim=1).values
    positives = (iou >= fg_iou).sum(dim=1).float()
    return Coverage(len(boxes), float((best >= fg_iou).float().mean()), float(best.median()), float(positives.mean()))


def shapes_boxes(root: str, input_size: int, images: int) -> torch.Tensor:
    """The non-crowd boxes of the first ``images`` training images of a VOC-layout shapes set, in the input frame."""
    dataset = VOCDetection(root, "2007", "train", keep_difficult=False, class_names=SHAPES_CLASSES)
    boxes = []
    for i in range(min(images, len(dataset))):
        image, target = dataset[i]
        boxes.append(target["boxes"] * (input_size / image.shape[-1]))
    return torch.cat(boxes) if boxes else torch.zeros(0, 4)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.anchor_coverage", description=__doc__)
    parser.add_argument("root", help="a VOC-layout shapes set (make-shapes --format voc)")
    parser.add_argument("--input-size", type=int, required=True, help="the detector's (square) input size")
    parser.add_argument("--images", type=int, default=200, help="training images read")
    args = parser.parse_args(argv)
    try:
        boxes = shapes_boxes(args.root, args.input_size, args.images)
    except (FileNotFoundError, ValueError) as error:  # the readers name the file
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, sizes in (("demo", demo_anchor_sizes(args.input_size)), ("2x stride", tuple(2 * s for s in STRIDES))):
        c = anchor_coverage(boxes, image_anchors(args.input_size, sizes))
        print(f"{name} anchors {sizes}: {c.boxes} boxes, {c.covered:.0%} with an anchor at IoU >= 0.5, median best "
              f"IoU {c.median_best_iou:.2f}, {c.positives_per_box:.1f} such anchors per box")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
