"""``torchvision.transforms.v2`` pipelines for ``(image, target)`` detection samples.

Resizing and normalisation are not here: the model's own transform does them, the same way in training and
evaluation. Training adds a random horizontal flip, optionally photometric distortion and a zoom in/out
("scale jitter"); evaluation only fixes the dtype.

The random draws come from the global torch RNG (``transforms.v2`` takes no generator). In training the data set
seeds it per sample from ``(shuffle seed, epoch, index)`` (see :mod:`lightning_retina.data.sampler`), so a resumed
run augments every image as the uninterrupted run did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

#: Target keys holding one value per box; they are flipped/filtered together with ``boxes``.
PER_BOX_KEYS = ("labels", "difficult", "iscrowd", "area")


def _per_box_tensors(sample: dict[str, Any]) -> tuple[Tensor, ...]:
    """``SanitizeBoundingBoxes``' ``labels_getter``: every per-box tensor of the sample (a function, so it pickles)."""
    return tuple(sample[k] for k in PER_BOX_KEYS if k in sample)


class DetectionTransforms:
    """Runs a ``transforms.v2`` pipeline on ``(image, target)`` and hands plain tensors back.

    The boxes travel through the pipeline as ``tv_tensors.BoundingBoxes`` (xyxy, canvas = the image), so geometric
    transforms move them; afterwards ``target["boxes"]`` is a plain ``Tensor[N, 4]`` again and the per-box entries
    (:data:`PER_BOX_KEYS`) are filtered along with boxes that a ``SanitizeBoundingBoxes`` step removed.

    Args:
        pipeline: a ``transforms.v2`` transform taking a dict with ``image``, ``boxes`` and the per-box tensors.
    """

    def __init__(self, pipeline: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.pipeline = pipeline

    def __call__(self, image: Tensor, target: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Transform one sample.

        Args:
            image: ``Tensor[3, H, W]`` (float in ``0..1`` or uint8).
            target: ``boxes`` (``Tensor[N, 4]`` xyxy absolute pixels) and per-box entries; other keys pass through.

        Returns:
            ``(image, target)`` with ``image`` float32 in ``0..1`` and ``target["boxes"]`` a plain ``Tensor``.
        """
        boxes = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=tuple(image.shape[-2:]))
        sample = {"image": tv_tensors.Image(image), "boxes": boxes}
        sample.update((k, target[k]) for k in PER_BOX_KEYS if k in target)
        out = self.pipeline(sample)
        new_target = {**target, **{k: out[k] for k in PER_BOX_KEYS if k in out}}
        new_target["boxes"] = out["boxes"].as_subclass(Tensor)
        return out["image"].as_subclass(Tensor), new_target

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pipeline})"


def train_transforms(
    flip: bool = True, photometric: bool = False, scale_jitter: tuple[float, float] | None = None
) -> DetectionTransforms:
    """The training augmentation.

    Args:
        flip: random horizontal flip (p = 0.5).
        photometric: SSD-style random brightness / contrast / saturation / hue / channel order
            (``v2.RandomPhotometricDistort``).
        scale_jitter: ``(min_scale, max_scale)``: zoom the content about the centre by a random factor while the
            canvas stays the same size, so object sizes vary relative to the image the model resizes (e.g.
            ``(0.5, 1.5)``). Boxes are clipped to the image and boxes that shrink below 1 px are removed.

    Raises:
        ValueError: for a ``scale_jitter`` that is not ``0 < min_scale <= max_scale``.
    """
    steps: list[Callable[..., Any]] = []
    if photometric:
        steps.append(v2.RandomPhotometricDistort(p=0.5))
    if scale_jitter is not None:
        low, high = scale_jitter
        if not 0 < low <= high:
            raise ValueError(f"scale_jitter must be (min_scale, max_scale) with 0 < min <= max, got {scale_jitter}")
        steps += [
            v2.RandomAffine(degrees=0.0, scale=(low, high)),
            v2.ClampBoundingBoxes(),
            v2.SanitizeBoundingBoxes(labels_getter=_per_box_tensors),
        ]
    if flip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    return DetectionTransforms(v2.Compose(steps))


def eval_transforms() -> DetectionTransforms:
    """The evaluation pipeline: no augmentation, images as float32 in ``0..1``."""
    return DetectionTransforms(v2.ToDtype(torch.float32, scale=True))
