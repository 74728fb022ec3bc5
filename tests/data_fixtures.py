"""Tiny Pascal VOC and COCO trees written in the real on-disk formats, for the reader and data-module tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class VOCObject:
    """One ``<object>``: ``box`` is the 1-based inclusive ``(xmin, ymin, xmax, ymax)`` written to the XML."""

    name: str
    box: tuple[float, float, float, float]
    difficult: bool = False
    truncated: bool = False


@dataclass
class VOCImage:
    """One image of a VOC tree: a constant-colour JPEG in ``mode`` (``"RGB"``, ``"L"`` or ``"CMYK"``)."""

    stem: str
    width: int
    height: int
    objects: list[VOCObject] = field(default_factory=list)
    mode: str = "RGB"
    colour: int | tuple[int, ...] = (40, 120, 200)


def voc_xml(image: VOCImage) -> str:
    """The annotation XML of ``image``, laid out like the VOC devkit files."""
    objects = "".join(
        f"""
    <object>
        <name>{o.name}</name>
        <pose>Unspecified</pose>
        <truncated>{int(o.truncated)}</truncated>
        <difficult>{int(o.difficult)}</difficult>
        <bndbox>
            <xmin>{o.box[0]:g}</xmin>
            <ymin>{o.box[1]:g}</ymin>
            <xmax>{o.box[2]:g}</xmax>
            <ymax>{o.box[3]:g}</ymax>
        </bndbox>
    </object>"""
        for o in image.objects
    )
    return f"""<annotation>
    <folder>VOC2007</folder>
    <filename>{image.stem}.jpg</filename>
    <size>
        <width>{image.width}</width>
        <height>{image.height}</height>
        <depth>3</depth>
    </size>
    <segmented>0</segmented>{objects}
</annotation>
"""


def write_voc(root: Path, year: str, images: list[VOCImage], image_sets: dict[str, list[str]]) -> Path:
    """Write ``root/VOCdevkit/VOC<year>/{JPEGImages, Annotations, ImageSets/Main/<set>.txt}``; returns the year dir."""
    base = root / "VOCdevkit" / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for image in images:
        Image.new(image.mode, (image.width, image.height), image.colour).save(base / "JPEGImages" / f"{image.stem}.jpg")
        (base / "Annotations" / f"{image.stem}.xml").write_text(voc_xml(image))
    for name, stems in image_sets.items():
        (base / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{s}\n" for s in stems))
    return base


def sample_voc_images() -> list[VOCImage]:
    """Three images: difficult, truncated and zero-area objects (RGB); a grayscale JPEG; a CMYK JPEG."""
    return [
        VOCImage("000005", 64, 48, [
            VOCObject("dog", (1, 1, 20, 30), truncated=True),
            VOCObject("person", (10, 5, 64, 48), difficult=True),
            VOCObject("cat", (31, 10, 30, 20)),  # xmax = xmin - 1: zero width once converted, dropped
            VOCObject("tvmonitor", (40.5, 2, 50, 12.5)),
        ]),
        VOCImage("000007", 40, 30, [VOCObject("bird", (5, 6, 20, 25))], mode="L", colour=128),
        VOCImage("000009", 32, 32, [VOCObject("car", (2, 3, 32, 32), difficult=True)], mode="CMYK",
                 colour=(0, 255, 255, 0)),
    ]  # fmt: skip


@dataclass
class COCOTree:
    """Paths of a written COCO split."""

    image_dir: Path
    ann_file: Path


def sample_coco() -> dict:
    """A COCO ``instances`` dict: category ids 90, 1, 3 (listed out of order), a crowd box, a zero-area box and an
    image without annotations."""
    return {
        "images": [
            {"id": 7, "file_name": "a.jpg", "width": 50, "height": 40},
            {"id": 3, "file_name": "b.jpg", "width": 30, "height": 60},
            {"id": 12, "file_name": "c.jpg", "width": 20, "height": 20},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [2.5, 3, 10, 20], "area": 200, "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 90, "bbox": [0, 0, 50, 40], "area": 2000, "iscrowd": 1},
            {"id": 5, "image_id": 3, "category_id": 3, "bbox": [4, 5, 6, 7], "area": 42, "iscrowd": 0},
            {"id": 6, "image_id": 3, "category_id": 1, "bbox": [8, 9, 0, 4], "area": 0, "iscrowd": 0},
            {"id": 9, "image_id": 3, "category_id": 90, "bbox": [10, 20, 20, 40], "area": 800, "iscrowd": 0},
        ],
        "categories": [
            {"id": 90, "name": "toothbrush", "supercategory": "indoor"},
            {"id": 1, "name": "person", "supercategory": "person"},
            {"id": 3, "name": "car", "supercategory": "vehicle"},
        ],
    }


def write_coco(root: Path, split: str, data: dict) -> COCOTree:
    """Write ``root/<split>/<file_name>`` JPEGs and ``root/annotations/instances_<split>.json``."""
    image_dir, ann_dir = root / split, root / "annotations"
    image_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for info in data["images"]:
        pixels = rng.integers(0, 256, size=(info["height"], info["width"], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(image_dir / info["file_name"])
    ann_file = ann_dir / f"instances_{split}.json"
    ann_file.write_text(json.dumps(data))
    return COCOTree(image_dir, ann_file)
