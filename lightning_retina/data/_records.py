"""What the VOC and COCO readers share: parsed per-image records, box checks, ``__getitem__``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightning_retina.data.image_io import DEFAULT_MAX_PIXELS, decode_image, warn_once
from lightning_retina.data.sampler import SampleKey

Target = dict[str, Tensor | int]
Transforms = Callable[[Tensor, Target], tuple[Tensor, Target]]

#: How far (pixels) a box may reach past the image border before it is an error; within it the box is clipped.
#: Annotation tools often write ``xmin=0`` in the 1-based VOC format or ``x + w = width + 0.5`` in COCO.
BORDER_TOLERANCE = 1.0


@dataclass(frozen=True)
class Record:
    """One image and its parsed, checked annotation.

    Attributes:
        path: the image file.
        boxes: ``float32[N, 4]`` xyxy, absolute pixels, inside the image, positive area.
        labels: ``int64[N]`` in ``0..K-1``.
        flags: ``bool[N]`` (VOC ``difficult`` / COCO ``iscrowd``).
        image_id: the integer written to ``target["image_id"]``.
        size: ``(width, height)`` written in the annotation file, ``None`` when it gives none.
        areas: ``float32[N]`` object areas for COCO's small/medium/large (``target["area"]``), or ``None``.
    """

    path: Path
    boxes: np.ndarray
    labels: np.ndarray
    flags: np.ndarray
    image_id: int
    size: tuple[float, float] | None = None
    areas: np.ndarray | None = None


def check_boxes(boxes: np.ndarray, width: float, height: float, where: str, names: Sequence[object]) -> np.ndarray:
    """Check xyxy boxes against an image of ``width`` × ``height`` and clip what lies within the border tolerance.

    Args:
        boxes: ``float[N, 4]`` xyxy absolute pixels.
        width: image width in pixels.
        height: image height in pixels.
        where: the file named in errors.
        names: one name per box for errors (``"object 3"``, ``"annotation id 17"``).

    Returns:
        ``float32[N, 4]``, clipped to ``[0, width] × [0, height]``.

    Raises:
        ValueError: naming ``where`` and the box, for a non-finite coordinate, ``x2 < x1`` / ``y2 < y1``, or a box
            reaching more than :data:`BORDER_TOLERANCE` pixels outside the image.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    size = np.array([width, height, width, height])
    non_finite = ~np.isfinite(boxes).all(axis=1)
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    outside = (boxes < -BORDER_TOLERANCE)[:, :2].any(axis=1) | (boxes > size + BORDER_TOLERANCE)[:, 2:].any(axis=1)
    for mask, problem in (
        (non_finite, "a non-finite coordinate"),
        (inverted, "x2 < x1 or y2 < y1"),
        (outside, f"a box outside the {width:g}x{height:g} image"),
    ):
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise ValueError(f"{where}: {names[i]} has {problem}: {boxes[i].tolist()} (xyxy)")
    return np.clip(boxes, 0.0, size).astype(np.float32)


class RecordDataset(Dataset):
    """A map-style detection data set over :class:`Record` s.

    Items are ``(image, target)``: ``image`` is ``float32[3, H, W]`` in ``0..1``; ``target`` holds ``boxes``
    (``float32[N, 4]`` xyxy absolute pixels), ``labels`` (``int64[N]`` in ``0..K-1``), ``image_id`` (int) and the
    per-box flag under :attr:`flag_key`. ``transforms(image, target)`` runs last.

    Images are decoded by :func:`~lightning_retina.data.image_io.decode_image` (at most ``max_pixels`` pixels).
    The pixels are trusted over the annotation file: when the decoded size differs from the ``size`` / ``width`` /
    ``height`` the file gives, boxes are checked against the decoded image and an
    :class:`~lightning_retina.data.image_io.ImageWarning` names the file once.
    An item is indexed by an int or by a :class:`~lightning_retina.data.sampler.SampleKey` (what the training
    sampler yields): then the transforms run with the global torch RNG seeded from ``key.seed`` (and restored
    afterwards), so the item's random augmentation depends on that seed alone, not on the worker or what ran before.

    Subclasses set :attr:`records`, :attr:`class_names` and :attr:`flag_key`.
    """

    flag_key: str

    def __init__(
        self,
        records: list[Record],
        class_names: Sequence[str],
        transforms: Transforms | None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.records = records
        self.class_names = tuple(class_names)
        self.transforms = transforms
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | SampleKey) -> tuple[Tensor, Target]:
        index, seed = key if isinstance(key, SampleKey) else (key, None)
        record = self.records[index]
        image = decode_image(record.path, self.max_pixels)
        height, width = image.shape[-2:]
        if record.size is not None and record.size != (width, height):
            warn_once(
                record.path, "size",
                f"{record.path}: the annotation gives the size {record.size[0]:g}x{record.size[1]:g}, the image is "
                f"{width}x{height} (after its EXIF orientation); boxes are checked against the image",
            )  # fmt: skip
        names = [f"box {i}" for i in range(len(record.boxes))]
        boxes = check_boxes(record.boxes, width, height, str(record.path), names)
        target: Target = {
            "boxes": torch.from_numpy(boxes),
            "labels": torch.from_numpy(record.labels),
            "image_id": record.image_id,
            self.flag_key: torch.from_numpy(record.flags),
        }
        if record.areas is not None:
            target["area"] = torch.from_numpy(record.areas)
        if self.transforms is not None:
            with torch.random.fork_rng(devices=[], enabled=seed is not None):
                if seed is not None:
                    torch.manual_seed(seed)
                image, target = self.transforms(image, target)
        return image, target
