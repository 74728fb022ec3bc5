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

from lightning_retina.data._records import Record, RecordDataset, Transforms, check_boxes

logger = logging.getLogger(__name__)


def load_coco(ann_file: str | Path) -> COCO:
    """``pycocotools.COCO(ann_file)`` without its prints.

    Raises:
        FileNotFoundError: when ``ann_file`` does not exist.
        ValueError: naming ``ann_file`` when it is not valid JSON or lacks ``images`` / ``annotations`` /
            ``categories``.
    """
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {ann_file}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(ann_file))
    except (json.JSONDecodeError, RecursionError) as err:  # RecursionError: absurdly deep nesting
        raise ValueError(f"{ann_file}: malformed JSON ({type(err).__name__}: {err})") from err
    except (AssertionError, KeyError, TypeError) as err:  # pycocotools' own checks while indexing
        raise ValueError(f"{ann_file}: not a COCO instances file ({type(err).__name__}: {err})") from err
    missing = [k for k in ("images", "annotations", "categories") if k not in coco.dataset]
    if missing:
        raise ValueError(f"{ann_file}: not a COCO instances file, missing keys {missing}")
    return coco


def _sorted_categories(categories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Categories in label order: increasing category id."""
    return sorted(categories, key=lambda c: c["id"])


def coco_class_names(ann_file: str | Path) -> tuple[str, ...]:
    """The category names of a COCO annotation file in label order, read without building the full index.

    Raises:
        FileNotFoundError: when ``ann_file`` does not exist.
        ValueError: naming ``ann_file`` when it is not valid JSON or has no ``categories``.
    """
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {ann_file}")
    try:
        categories = json.loads(ann_file.read_text())["categories"]
    except (json.JSONDecodeError, RecursionError, KeyError, TypeError) as err:
        raise ValueError(f"{ann_file}: cannot read 'categories' ({type(err).__name__}: {err})") from err
    return tuple(c["name"] for c in _sorted_categories(categories))


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

    Attributes:
        coco: the ``pycocotools.coco.COCO`` object (for ``COCOeval``).
        image_ids: the COCO image ids, in item order (ascending).
        class_names: category names in label order.
        label_to_category_id: ``{label: category id}``.

    Raises:
        FileNotFoundError: for a missing annotation file or image.
        ValueError: naming the file and annotation id for malformed JSON, a ``bbox`` that is not 4 numbers, an
            unknown category, a negative width/height or a box outside the image.
    """

    flag_key = "iscrowd"

    def __init__(self, image_dir: str | Path, ann_file: str | Path, transforms: Transforms | None = None) -> None:
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
        super().__init__(records, [c["name"] for c in categories], transforms)

    def _parse(self, image_dir: Path, img_id: int, ann_file: str) -> Record:
        info = self.coco.imgs[img_id]
        path = image_dir / info["file_name"]
        if not path.is_file():
            raise FileNotFoundError(f"COCO image not found: {path} (image id {img_id} in {ann_file})")
        anns = self.coco.imgToAnns.get(img_id, [])
        names = [f"annotation id {ann.get('id')}" for ann in anns]
        xywh = np.array([_xywh(ann, f"{ann_file}, {name}") for ann, name in zip(anns, names)]).reshape(-1, 4)
        for ann, name in zip(anns, names):
            if ann.get("category_id") not in self._label_of:
                raise ValueError(f"{ann_file}, {name}: unknown category_id {ann.get('category_id')!r}")
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
            areas=areas[keep].astype(np.float32),
        )
