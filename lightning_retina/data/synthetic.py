"""A synthetic detection data set of drawn shapes, written to disk in the real VOC or COCO layout.

It is small enough to generate in seconds and easy enough for a small detector to learn on a CPU in minutes
(high-contrast shapes, boxes tight around the drawn pixels), yet it goes through exactly the same readers, file
formats and evaluation as Pascal VOC and COCO.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from lightning_retina.data.layout import VOC_DEVKIT, VOCYear, coco_paths
from lightning_retina.output_folder import claim_output_folder, read_marker, write_marker

SHAPES_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star")
SHAPES_FORMATS = ("voc", "coco")
MANIFEST = "shapes.json"
WRITER = "lightning-retina make-shapes"

_NOISE_STD = 10.0
_MIN_CONTRAST = 80.0  # mean absolute RGB difference between a shape and the background
_MAX_OVERLAP = 0.25  # intersection over the smaller box allowed between two objects of one image
_GROUP_PROBABILITY = 0.1  # chance that an image holds a "crowd": a cluster of small shapes annotated as one box


@dataclass(frozen=True)
class ShapeObject:
    """One annotated object: ``box`` is ``(x1, y1, x2, y2)`` in integer pixel edges (continuous xyxy).

    ``group`` marks a cluster of small shapes annotated as one box: ``difficult`` in VOC, ``iscrowd`` in COCO.
    """

    label: int
    box: tuple[int, int, int, int]
    area: int
    group: bool


def _shape_mask(label: int, size: int, rng: np.random.Generator) -> Image.Image:
    """A binary ``L`` mask of one shape drawn in a ``size`` × ``size`` canvas."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    last = size - 1
    name = SHAPES_CLASSES[label]
    if name == "circle":
        draw.ellipse((0, 0, last, last), fill=255)
    elif name == "square":
        draw.rectangle((0, 0, last, last), fill=255)
    elif name == "triangle":
        apex = rng.uniform(0.2, 0.8) * last
        points = [(0, last), (apex, 0), (last, last)] if rng.random() < 0.5 else [(0, 0), (apex, last), (last, 0)]
        draw.polygon(points, fill=255)
    else:  # star: five points, random rotation
        turn = rng.uniform(0, 2 * math.pi)
        radii = [last / 2 if k % 2 == 0 else last / 5 for k in range(10)]
        draw.polygon(
            [(last / 2 + r * math.cos(turn + k * math.pi / 5), last / 2 + r * math.sin(turn + k * math.pi / 5))
             for k, r in enumerate(radii)],
            fill=255,
        )  # fmt: skip
    return mask


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over the smaller box's area: 1 when one box holds the other (so no shape hides another)."""
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller if smaller > 0 else 0.0


def _contrasting_colour(background: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int]:
    """A random colour at least :data:`_MIN_CONTRAST` away from every colour in ``background`` (``[k, 3]``)."""
    candidates = rng.integers(0, 256, size=(64, 3))
    contrast = np.abs(candidates[:, None, :] - background[None]).mean(axis=2).min(axis=1)
    good = np.flatnonzero(contrast >= _MIN_CONTRAST)
    colour = candidates[good[0]] if good.size else 255 - background.mean(axis=0).astype(int)
    return tuple(int(c) for c in colour)


def _paste(
    image: Image.Image,
    label: int,
    size: int,
    xy: tuple[int, int],
    colour: tuple[int, int, int],
    rng: np.random.Generator,
) -> tuple[tuple[int, int, int, int], int]:
    """Draw one shape with its top-left canvas corner at ``xy``; returns its tight box and pixel area."""
    mask = _shape_mask(label, size, rng)
    image.paste(colour, (xy[0], xy[1], xy[0] + size, xy[1] + size), mask)
    left, top, right, bottom = mask.getbbox()
    area = int(np.count_nonzero(np.asarray(mask)))
    return (xy[0] + left, xy[1] + top, xy[0] + right, xy[1] + bottom), area


def default_shape_sizes(image_size: int) -> tuple[int, int]:
    """The shapes' side range without ``shape_sizes``: 12–120 px at 256 px, scaled with the image (at least 8–9)."""
    scale = image_size / 256
    return max(8, round(12 * scale)), max(9, round(120 * scale))


def _draw_image(
    rng: np.random.Generator,
    image_size: int,
    objects_per_image: Sequence[int],
    shape_sizes: Sequence[int] | None,
    crowd_probability: float,
) -> tuple[Image.Image, list[ShapeObject]]:
    """One noisy-background image with ``objects_per_image`` shapes of ``shape_sizes`` px (default
    :func:`default_shape_sizes`) and, with ``crowd_probability``, a crowd cluster."""
    scale = image_size / 256
    low, high = shape_sizes or default_shape_sizes(image_size)
    ends = rng.integers(0, 256, size=3)
    ends = np.stack([ends, np.clip(ends + rng.integers(-40, 41, size=3), 0, 255)])
    angle = rng.uniform(0, 2 * math.pi)
    ramp = np.linspace(0.0, 1.0, image_size)
    t = (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]) / 2 + 0.5
    background = ends[0] + t[..., None] * (ends[1] - ends[0])
    image = Image.fromarray(background.astype(np.uint8), "RGB")

    objects: list[ShapeObject] = []
    if rng.random() < crowd_probability:  # first, so it always fits; other shapes then stay clear of it
        objects += _draw_group(image, rng, ends, max(6, round(8 * scale)), max(7, round(14 * scale)))
    for _ in range(int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))):
        label, size = int(rng.integers(len(SHAPES_CLASSES))), int(rng.integers(low, high + 1))
        for _attempt in range(10):
            xy = (int(rng.integers(0, image_size - size + 1)), int(rng.integers(0, image_size - size + 1)))
            proposal = (xy[0], xy[1], xy[0] + size, xy[1] + size)
            if all(_overlap(proposal, o.box) <= (0.0 if o.group else _MAX_OVERLAP) for o in objects):
                box, area = _paste(image, label, size, xy, _contrasting_colour(ends, rng), rng)
                objects.append(ShapeObject(label, box, area, group=False))
                break

    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0.0, _NOISE_STD, size=(image_size, image_size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"), objects


def _draw_group(
    image: Image.Image, rng: np.random.Generator, ends: np.ndarray, low: int, high: int
) -> list[ShapeObject]:
    """3–5 small shapes of one class side by side, annotated as one box."""
    label, count, size = int(rng.integers(len(SHAPES_CLASSES))), int(rng.integers(3, 6)), int(rng.integers(low, high))
    width, height = image.size
    count = min(count, (width + 2) // (size + 2))  # at least 3 for image_size >= 32
    span = count * size + (count - 1) * 2
    xy = (int(rng.integers(0, width - span + 1)), int(rng.integers(0, height - size + 1)))
    colour = _contrasting_colour(ends, rng)
    boxes, area = [], 0
    for k in range(count):
        box, a = _paste(image, label, size, (xy[0] + k * (size + 2), xy[1]), colour, rng)
        boxes.append(box)
        area += a
    union = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    return [ShapeObject(label, union, area, group=True)]


def _voc_xml(stem: str, image_size: int, objects: list[ShapeObject]) -> ET.ElementTree:
    """A VOC annotation; boxes written 1-based inclusive (``xmin = x1 + 1``, ``xmax = x2``) like the devkit."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2007"
    ET.SubElement(root, "filename").text = f"{stem}.jpg"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", image_size), ("height", image_size), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for o in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = SHAPES_CLASSES[o.label]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = str(int(o.group))
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), (o.box[0] + 1, o.box[1] + 1, o.box[2], o.box[3])):
            ET.SubElement(bndbox, tag).text = str(value)
    return ET.ElementTree(root)


def _coco_annotations(image_id: int, first_id: int, objects: list[ShapeObject]) -> list[dict]:
    annotations = []
    for k, o in enumerate(objects):
        x1, y1, x2, y2 = o.box
        annotations.append({
            "id": first_id + k, "image_id": image_id, "category_id": o.label + 1,
            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": o.area, "iscrowd": int(o.group),
            "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]],
        })  # fmt: skip
    return annotations


Drawn = Iterator[tuple[str, int, Image.Image, list[ShapeObject]]]


def _draw_split(
    seed: int, split_index: int, count: int, first_id: int, image_size: int, drawing: dict[str, Any], bar: tqdm
) -> Drawn:
    """Yield ``(stem, image_id, image, objects)``; image ``i`` is drawn from the seed ``[seed, split_index, i]`` with
    the ``drawing`` arguments of :func:`_draw_image`."""
    for i in range(count):
        image, objects = _draw_image(np.random.default_rng([seed, split_index, i]), image_size, **drawing)
        yield f"{first_id + i:06d}", first_id + i, image, objects
        bar.update()


def _write_voc_split(root: Path, split: str, drawn: Drawn, image_size: int) -> None:
    """JPEGs and XMLs into ``root/VOCdevkit/VOC2007``, then the ``ImageSets/Main/<split>.txt`` list."""
    voc = VOCYear(root / VOC_DEVKIT / "VOC2007")
    for folder in (voc.images, voc.annotations, voc.image_sets):
        folder.mkdir(parents=True, exist_ok=True)
    stems = []
    for stem, _, image, objects in drawn:
        image.save(voc.image(stem), quality=90)
        _voc_xml(stem, image_size, objects).write(voc.annotation(stem))
        stems.append(stem)
    voc.image_set(split).write_text("".join(f"{s}\n" for s in stems))


def _write_coco_split(root: Path, split: str, drawn: Drawn, image_size: int) -> None:
    """JPEGs into ``root/<split>``, then ``root/annotations/instances_<split>.json``."""
    image_dir, ann_file = coco_paths(root, split)
    for folder in (image_dir, ann_file.parent):
        folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for stem, image_id, image, objects in drawn:
        image.save(image_dir / f"{stem}.jpg", quality=90)
        images.append({"id": image_id, "file_name": f"{stem}.jpg", "width": image_size, "height": image_size})
        annotations += _coco_annotations(image_id, len(annotations) + 1, objects)
    categories = [{"id": k + 1, "name": name, "supercategory": "shape"} for k, name in enumerate(SHAPES_CLASSES)]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    ann_file.write_text(json.dumps(coco))


def make_shapes_dataset(
    root: str | Path,
    format: str = "voc",
    num_train: int = 1500,
    num_val: int = 200,
    image_size: int = 256,
    seed: int = 0,
    overwrite: bool = False,
    objects_per_image: Sequence[int] = (1, 8),
    shape_sizes: Sequence[int] | None = None,
    crowd_probability: float = _GROUP_PROBABILITY,
) -> Path:
    """Write a data set of drawn circles, squares, triangles and stars (:data:`SHAPES_CLASSES`).

    Each image has a noisy two-colour gradient background and 1–8 shapes (``objects_per_image``) of random colour
    (high contrast to the background) and size (12–120 px at ``image_size=256``, scaled with the image; or
    ``shape_sizes``), overlapping by at most a quarter of the smaller one (a shape that finds no place in 10 tries
    is left out); one image in ten (``crowd_probability``) also holds a cluster of 3–5 tiny shapes annotated as a
    single box, marked ``difficult`` (VOC) or ``iscrowd`` (COCO). Boxes are the exact extent of the drawn pixels.
    The output depends only on the arguments (image ``i`` of a split does not depend on the number of images). A
    progress bar shows for 500 images or more; 1500 images of 256 px take about 10 s.

    Layouts:

    - ``"voc"``: ``root/VOCdevkit/VOC2007/{JPEGImages, Annotations, ImageSets/Main/{train,val}.txt}``, read with
      ``VOCDetection(root, "2007", "train")``.
    - ``"coco"``: ``root/{train,val}/*.jpg`` and ``root/annotations/instances_{train,val}.json`` (category ids 1–4),
      read with ``COCODetection(root / "train", root / "annotations/instances_train.json")``.

    Nothing a user owns is overwritten: ``root`` must be new, empty, or a folder this function wrote before (its
    ``shapes.json`` marker, or the arguments-only ``shapes.json`` of earlier versions), unless ``overwrite=True``. ``shapes.json`` is written first (marking the folder) and
    completed with the arguments last, so :func:`shapes_manifest` only reports a finished set; the image lists /
    JSON files are written after their images.

    Args:
        root: output folder (created).
        format: ``"voc"`` or ``"coco"``.
        num_train: images in the ``train`` split.
        num_val: images in the ``val`` split.
        image_size: width and height of the square images (>= 32).
        seed: random seed.
        overwrite: write into ``root`` even when it holds files this function did not write (same names are
            overwritten).
        objects_per_image: the fewest and most shapes drawn on one image (inclusive; crowd clusters not counted).
        shape_sizes: the smallest and largest side of a shape in pixels (inclusive); ``None``:
            :func:`default_shape_sizes`. Larger shapes with fewer per image make an easier task, e.g. ``(20, 48)``
            and ``(1, 4)`` on 96-px images.
        crowd_probability: the chance that an image holds a crowd cluster.

    Returns:
        ``Path(root)``.

    Raises:
        ValueError: for an unknown format, a negative count, ``image_size < 32``, ``objects_per_image`` or
            ``shape_sizes`` that are not ``(low, high)`` with ``0 <= low <= high`` (sizes ``1 <= low``, ``high <=
            image_size``), or a ``crowd_probability`` outside [0, 1]; naming ``root`` when it is a file or holds
            other files (without ``overwrite``). Nothing is written then.

    Example::

        >>> root = make_shapes_dataset("data/shapes", "voc", num_train=100, num_val=20)  # doctest: +SKIP
    """
    if format not in SHAPES_FORMATS:
        raise ValueError(f"format must be one of {SHAPES_FORMATS}, got {format!r}")
    if num_train < 0 or num_val < 0:
        raise ValueError(f"num_train and num_val must be >= 0, got {num_train} and {num_val}")
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32, got {image_size}")
    drawing = drawing_arguments(image_size, objects_per_image, shape_sizes, crowd_probability)
    earlier = _earlier_manifest(root) is not None  # a set written before the marker: ours all the same
    root = claim_output_folder(
        root, MANIFEST, WRITER, overwrite=overwrite or earlier, option="--overwrite (overwrite=True)"
    )
    write_marker(root, MANIFEST, WRITER, complete=False)  # an earlier set's arguments no longer hold from here
    writer = _write_voc_split if format == "voc" else _write_coco_split
    with tqdm(total=num_train + num_val, desc="drawing shapes", unit="img", disable=num_train + num_val < 500) as bar:
        for split_index, (split, count) in enumerate((("train", num_train), ("val", num_val))):
            first_id = 1 if split == "train" else num_train + 1  # ids and file names are unique over both splits
            drawn = _draw_split(seed, split_index, count, first_id, image_size, drawing, bar)
            writer(root, split, drawn, image_size)
    arguments = {"format": format, "num_train": num_train, "num_val": num_val, "image_size": image_size, "seed": seed,
                 **drawing}  # fmt: skip
    write_marker(root, MANIFEST, WRITER, complete=True, arguments=arguments)
    return root


def drawing_arguments(
    image_size: int, objects_per_image: Sequence[int], shape_sizes: Sequence[int] | None, crowd_probability: float
) -> dict[str, Any]:
    """The drawing arguments of :func:`make_shapes_dataset`, checked, as its manifest keeps them (JSON: lists).

    Raises:
        ValueError: naming the argument and its value, when it is out of range.
    """

    def low_high(name: str, value: Any, smallest: int, largest: int) -> list[int]:
        pair = list(value) if isinstance(value, (tuple, list)) else []
        if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair) or not (
            smallest <= pair[0] <= pair[1] <= largest
        ):
            raise ValueError(f"{name} must be (low, high) with {smallest} <= low <= high <= {largest}, got {value!r}")
        return pair

    if not 0.0 <= crowd_probability <= 1.0:
        raise ValueError(f"crowd_probability must be in [0, 1], got {crowd_probability!r}")
    return {
        "objects_per_image": low_high("objects_per_image", objects_per_image, 0, 10_000),
        "shape_sizes": None if shape_sizes is None else low_high("shape_sizes", shape_sizes, 1, image_size),
        "crowd_probability": float(crowd_probability),
    }


#: The drawing arguments' defaults as the manifest keeps them: what a set written before they existed was drawn with.
DEFAULT_DRAWING: dict[str, Any] = {"objects_per_image": [1, 8], "shape_sizes": None,
                                   "crowd_probability": _GROUP_PROBABILITY}  # fmt: skip


def shapes_manifest(root: str | Path) -> dict | None:
    """The arguments :func:`make_shapes_dataset` wrote ``root`` with; ``None`` when it holds no finished set.

    A ``shapes.json`` written by an earlier version (before the writers' marker, or before the drawing arguments)
    counts too, with the defaults it was drawn with (:data:`DEFAULT_DRAWING`); see :func:`_earlier_manifest`.
    """
    marker = read_marker(root, MANIFEST, WRITER)
    if marker is None:
        arguments = _earlier_manifest(root)
    else:
        arguments = marker["arguments"] if marker.get("complete") else None
    return None if arguments is None else {**DEFAULT_DRAWING, **arguments}


_ARGUMENTS = ("format", "num_train", "num_val", "image_size", "seed")


def _earlier_manifest(root: str | Path) -> dict | None:
    """The arguments in a ``shapes.json`` that an earlier version of :func:`make_shapes_dataset` wrote, else ``None``.

    Before the writers' marker (``"written_by"``) the manifest was the arguments alone, written after the whole set:
    exactly the keys ``format`` (``"voc"`` / ``"coco"``), ``num_train``, ``num_val``, ``image_size`` and ``seed``
    (integers). A file of that exact shape is taken as ours (a finished set); any other ``shapes.json`` is the user's.
    """
    try:
        data = json.loads((Path(root) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or set(data) != set(_ARGUMENTS) or data["format"] not in SHAPES_FORMATS:
        return None
    return data if all(type(data[key]) is int for key in _ARGUMENTS[1:]) else None
