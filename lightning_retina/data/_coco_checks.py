"""Consistency checks of a COCO ``instances`` file, run before ``pycocotools`` indexes it.

``pycocotools`` keeps the last of two images (or categories, or annotations) with one id and silently ignores an
annotation of an image that is not listed; every such inconsistency is refused here, naming the file and the id.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

REQUIRED_KEYS = ("images", "annotations", "categories")


def _is_int(value: Any) -> bool:
    """A JSON integer (``True`` / ``1.0`` / ``"1"`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _entries(data: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    entries = data[key]
    if not isinstance(entries, list):
        raise ValueError(f"{where}: '{key}' must be a list, got {type(entries).__name__}")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: {key}[{i}] must be an object, got {entry!r:.80}")
    return entries


def _unique_ids(entries: Iterable[dict[str, Any]], key: str, where: str) -> set[int]:
    """The ``"id"`` of every entry: each an integer, none twice."""
    seen: set[int] = set()
    for i, entry in enumerate(entries):
        value = entry.get("id")
        if not _is_int(value):
            raise ValueError(f"{where}: {key}[{i}] 'id' must be an integer, got {value!r}")
        if value in seen:
            raise ValueError(f"{where}: two entries of '{key}' have the id {value}")
        seen.add(value)
    return seen


def _check_name(entry: dict[str, Any], key: str, what: str, where: str) -> None:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}, {what}: '{key}' must be a non-empty string, got {value!r}")


def check_categories(categories: Any, where: str | Path) -> None:
    """Check a ``categories`` list: objects with a unique integer ``id`` and a non-empty ``name``.

    Raises:
        ValueError: naming ``where`` and the category.
    """
    entries = _entries({"categories": categories}, "categories", str(where))
    _unique_ids(entries, "categories", str(where))
    for category in entries:
        _check_name(category, "name", f"category id {category['id']}", str(where))


def check_coco_dataset(data: Any, where: str | Path) -> None:
    """Check the parsed JSON of a COCO ``instances`` file before it is indexed.

    Images: unique integer ``id``, non-empty ``file_name``, ``width`` / ``height`` positive integers when present.
    Categories: see :func:`check_categories`. Annotations: unique integer ``id``, an integer ``image_id`` of a listed
    image, an integer ``category_id`` of a listed category, ``iscrowd`` absent, ``0`` / ``1`` or a boolean. (Each
    annotation's ``bbox`` is checked when the data set reads it.)

    Raises:
        ValueError: naming ``where`` and the id / key / value of the first inconsistency.
    """
    where = str(where)
    if not isinstance(data, dict):
        raise ValueError(f"{where}: not a COCO instances file (the top level is a {type(data).__name__})")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"{where}: not a COCO instances file, missing keys {missing}")
    images = _entries(data, "images", where)
    image_ids = _unique_ids(images, "images", where)
    for image in images:
        what = f"image id {image['id']}"
        _check_name(image, "file_name", what, where)
        for key in ("width", "height"):
            if key in image and not (_is_int(image[key]) and image[key] > 0):
                raise ValueError(f"{where}, {what}: '{key}' must be a positive integer, got {image[key]!r}")
    check_categories(data["categories"], where)
    category_ids = {c["id"] for c in data["categories"]}
    annotations = _entries(data, "annotations", where)
    _unique_ids(annotations, "annotations", where)
    for ann in annotations:
        what = f"annotation id {ann['id']}"
        for key, known, kind in (("image_id", image_ids, "image"), ("category_id", category_ids, "category")):
            value = ann.get(key)
            if not _is_int(value):
                raise ValueError(f"{where}, {what}: '{key}' must be an integer, got {value!r}")
            if value not in known:
                raise ValueError(f"{where}, {what}: '{key}' {value} is not the id of any listed {kind}")
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1) or not isinstance(crowd, (int, bool)):
            raise ValueError(f"{where}, {what}: 'iscrowd' must be 0, 1, true or false, got {crowd!r}")
