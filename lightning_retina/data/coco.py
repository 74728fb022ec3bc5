"""COCO detection reader: an image folder and an ``instances_*.json`` annotation file, via ``pycocotools``."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from lightning_retina.data._coco_checks import check_categories, check_coco_dataset
from lightning_retina.data._records import Record, RecordDataset, Transforms, check_boxes
from lightning_retina.data.image_io import DEFAULT_MAX_PIXELS

logger = logging.getLogger(__name__)


def _read_json(ann_file: Path) -> Any:
    if not ann_file.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {ann_file}")
    try:
        return json.loads(ann_file.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:  # RecursionError: absurd nesting
        raise ValueError(f"{ann_file}: malformed JSON ({type(err).__name__}: {err})") from err


def load_coco(ann_file: str | Path) -> COCO:
    """Read, check and index a COCO ``instances`` file: a ``pycocotools.COCO`` object, without its prints.

    Raises:
        FileNotFoundError: when ``ann_file`` does not exist.
        ValueError: naming ``ann_file`` (and the id / key / value) when it is not valid JSON or not a consistent
            COCO instances file (see :func:`~lightning_retina.data._coco_checks.check_coco_dataset`).
    """
    ann_file = Path(ann_file)
    data = _read_json(ann_file)
    check_coco_dataset(data, ann_file)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _sorted_categories(categories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Categories in label order: increasing category id."""
    return sorted(categories, key=lambda c: c["id"])


def coco_class_names(ann_file: str | Path) -> tuple[str, ...]:
    """The category names of a COCO annotation file in label order, read without building the full index.

    Raises:
        FileNotFoundError: when ``ann_file`` does not exist.
        ValueError: naming ``ann_file`` when it is not valid JSON, has no ``categories`` or a category without an
            integer ``id`` or a ``name``, or two with one id.
    """
    return tuple(c["name"] for c in _read_categories(ann_file))


def coco_category_ids(ann_file: str | Path) -> tuple[int, ...]:
    """The category ids of a COCO annotation file in label order (increasing), as ``COCODetection`` maps them.

    Raises:
        FileNotFoundError: when ``ann_file`` does not exist.
        ValueError: naming ``ann_file`` when it is not valid JSON or has no ``categories``.
    """
    return tuple(int(c["id"]) for c in _read_categories(ann_file))


def _read_categories(ann_file: str | Path) -> list[dict[str, Any]]:
    ann_file = Path(ann_file)
    data = _read_json(ann_file)
    if not isinstance(data, dict) or "categories" not in data:
        raise ValueError(f"{ann_file}: not a COCO instances file, no 'categories'")
    check_categories(data["categories"], ann_file)
    return _sorted_categories(data["categories"])


def _xywh(ann: dict[str, Any], where: str) -> list[float]:
    bbox = ann.get("bbox")
    ok = isinstance(bbox, list) and len(bbox) == 4
    if not ok or not all(isinstance(v, Real) and not isinstance(v, bool) for v in bbox):
        raise ValueError(f"{where}: 'bbox' must be 4 numbers [x, y, w, h], got {bbox!r}")
    return [float(v) for v in bbox]


def _area(ann: dict[str, Any], where: str) -> float:
    """The annotation's ``area`` (0 when absent: the box area is used then)."""
    area = ann.get("area", 0)
    if not isinstance(area, Real) or isinstance(area, bool) or not np.isfinite(area):
        raise ValueError(f"{where}: 'area' must be a finite number, got {area!r}")
    return float(area)


class COCODetection(RecordDataset):
    """COCO-format detection data (``instances_*.json``), every image kept, crowd boxes flagged.

    Category ids (1, 3, 90, …) map to contiguous labels ``0..K-1`` in increasing id order;
    :attr:`label_to_category_id` maps back for writing results. ``[x, y, w, h]`` becomes xyxy; a box reaching at
    most one pixel past the border is clipped; zero-area boxes are dropped and counted in the log. Crowd boxes are
    kept with ``iscrowd=True`` (the loss ignores them, COCO evaluation uses them). Images without annotations are kept.

    Items are ``(image, target)``: ``image`` is ``float32[3, H, W]`` in ``0..1``; ``target`` has ``boxes``
    (``float32[N, 4]`` xyxy), ``labels`` (``int64[N]``), ``iscrowd`` (``bool[N]``), ``area`` (``float32[N]``, the
    annotation's ``area`` — the segment area COCO's small/medium/large use — or the box area where it is absent or
    not positive) and ``image_id`` (the COCO id).

    Args:
        image_dir: the folder with the images (``file_name`` in the JSON is relative to it).
        ann_file: the ``instances_*.json`` file.
        transforms: ``transforms(image, target) -> (image, target)``.
        max_pixels: refuse images with more pixels (see :func:`~lightning_retina.data.image_io.decode_image`).

    Attributes:
        coco: the ``pycocotools.coco.COCO`` object (for ``COCOeval``).
        image_ids: the COCO image ids, in item order (ascending).
        class_names: category names in label order.
        label_to_category_id: ``{label: category id}``.

    Raises:
        FileNotFoundError: for a missing annotation file or image.
        ValueError: naming the file and the image / annotation / category id for malformed JSON, an inconsistent
            file (duplicate ids, an annotation of an unlisted image or category, a non-integer id, ``iscrowd`` other
            than 0/1/true/false, an image without ``file_name``, ``width`` / ``height`` not a positive integer, a
            category without ``name``), a ``bbox`` that is not 4 numbers, a negative width/height or a box outside
            the image.
    """

    flag_key = "iscrowd"

    def __init__(
        self,
        image_dir: str | Path,
        ann_file: str | Path,
        transforms: Transforms | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.coco = load_coco(ann_file)
        categories = _sorted_categories(self.coco.dataset["categories"])
        self.label_to_category_id = {label: int(c["id"]) for label, c in enumerate(categories)}
        self._label_of = {cid: label for label, cid in self.label_to_category_id.items()}
        self.image_ids: list[int] = sorted(self.coco.getImgIds())
        self.num_dropped_zero_area = 0
        image_dir = Path(image_dir)
        records = [self._parse(image_dir, img_id, str(ann_file)) for img_id in self.image_ids]
        if self.num_dropped_zero_area:
            logger.warning("%s: dropped %d zero-area boxes", ann_file, self.num_dropped_zero_area)
        super().__init__(records, [c["name"] for c in categories], transforms, max_pixels)

    def _parse(self, image_dir: Path, img_id: int, ann_file: str) -> Record:
        info = self.coco.imgs[img_id]
        path = image_dir / info["file_name"]
        if not path.is_file():
            raise FileNotFoundError(f"COCO image not found: {path} (image id {img_id} in {ann_file})")
        anns = self.coco.imgToAnns.get(img_id, [])
        names = [f"annotation id {ann.get('id')}" for ann in anns]
        xywh = np.array([_xywh(ann, f"{ann_file}, {name}") for ann, name in zip(anns, names)]).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        boxes = check_boxes(boxes, info.get("width", np.inf), info.get("height", np.inf), ann_file, names)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        self.num_dropped_zero_area += int((~keep).sum())
        areas = np.array([_area(ann, f"{ann_file}, {name}") for ann, name in zip(anns, names)]).reshape(-1)
        areas = np.where(areas > 0, areas, (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        return Record(
            path=path,
            boxes=boxes[keep],
            labels=np.array([self._label_of[a["category_id"]] for a in anns], dtype=np.int64).reshape(-1)[keep],
            flags=np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool).reshape(-1)[keep],
            image_id=int(img_id),
            size=(info["width"], info["height"]) if "width" in info and "height" in info else None,
            areas=areas[keep].astype(np.float32),
        )
