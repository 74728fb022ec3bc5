"""Pascal VOC reader: ``VOCdevkit/VOC<year>/{Annotations, JPEGImages, ImageSets/Main}``."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import parse as parse_xml

from lightning_retina.data._records import Record, RecordDataset, Transforms, check_boxes
from lightning_retina.data.image_io import DEFAULT_MAX_PIXELS
from lightning_retina.data.layout import VOCYear, read_image_set

logger = logging.getLogger(__name__)

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def _splits(year: str | Sequence[str], image_set: str | Sequence[str]) -> list[tuple[str, str]]:
    years = [year] if isinstance(year, str) else list(year)
    sets = [image_set] if isinstance(image_set, str) else list(image_set)
    if len(years) == 1 and len(sets) > 1:
        years = years * len(sets)
    if len(sets) == 1 and len(years) > 1:
        sets = sets * len(years)
    if len(years) != len(sets) or not years:
        raise ValueError(f"year {year!r} and image_set {image_set!r} must pair up one to one")
    return list(zip((str(y) for y in years), sets))


def _text(element: Element, tag: str, where: str) -> str:
    child = element.find(tag)
    if child is None or child.text is None:
        raise ValueError(f"{where}: missing <{tag}>")
    return child.text.strip()


def _number(element: Element, tag: str, where: str) -> float:
    text = _text(element, tag, where)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: <{tag}> is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: <{tag}> is {text!r}, not a finite number")
    return value


def _image_size(root: Element, where: str) -> tuple[int, int] | None:
    """``(width, height)`` from ``<size>``; ``None`` when absent or zero (some tools write 0 for "unknown").

    Raises:
        ValueError: naming ``where`` and the tag for a size that is not a whole number >= 0.
    """
    size = root.find("size")
    if size is None:
        return None
    width, height = (_number(size, tag, where) for tag in ("width", "height"))
    for tag, value in (("width", width), ("height", height)):
        if not (math.isfinite(value) and value >= 0 and value == int(value)):
            raise ValueError(f"{where}: <size><{tag}> is {value:g}, not a whole number of pixels >= 0")
    return (int(width), int(height)) if width > 0 and height > 0 else None


_DIFFICULT = {"0": False, "1": True, "false": False, "true": True}


def _difficult(obj: Element, where: str) -> bool:
    """``<difficult>``: ``0``/``1`` (or ``false``/``true``); absent or empty means not difficult.

    Raises:
        ValueError: naming ``where`` and the value for anything else.
    """
    flag = obj.find("difficult")
    text = "" if flag is None or flag.text is None else flag.text.strip()
    if not text:
        return False
    if text.lower() not in _DIFFICULT:
        raise ValueError(f"{where}: <difficult> is {text!r}, not 0 or 1")
    return _DIFFICULT[text.lower()]


class VOCDetection(RecordDataset):
    """Pascal VOC detection data, read from the devkit layout; several year/image-set pairs concatenate.

    Boxes follow detectron2: the 1-based inclusive VOC pixel coordinates become ``(xmin - 1, ymin - 1, xmax, ymax)``,
    a continuous xyxy box whose plain IoU equals the devkit's "+1" IoU (so
    :class:`~lightning_retina.metrics.VOCMeanAveragePrecision` reproduces ``voc_eval``). A box reaching at most one
    pixel past the border (``xmin=0`` from some annotation tools) is clipped; zero-area boxes are dropped and counted
    in the log. All annotations are parsed and checked when the data set is built.

    Items are ``(image, target)``: ``image`` is ``float32[3, H, W]`` in ``0..1``; ``target`` has ``boxes``
    (``float32[N, 4]``), ``labels`` (``int64[N]``, index in ``class_names``), ``difficult`` (``bool[N]``) and
    ``image_id`` (the item's index).

    Args:
        root: the folder holding ``VOCdevkit``, or the ``VOCdevkit`` folder itself.
        year: ``"2007"`` … ``"2012"``, or a sequence of years paired with ``image_set`` (VOC 07+12:
            ``year=("2007", "2012"), image_set="trainval"``).
        image_set: ``"train"``, ``"val"``, ``"trainval"``, ``"test"`` (a file in ``ImageSets/Main``), or a sequence.
        keep_difficult: keep objects marked difficult (for evaluation); ``False`` drops them (for training).
        transforms: ``transforms(image, target) -> (image, target)``, e.g.
            :func:`~lightning_retina.data.transforms.train_transforms`.
        class_names: the classes, in label order.
        max_pixels: refuse images with more pixels (see :func:`~lightning_retina.data.image_io.decode_image`).

    Attributes:
        image_ids: the file stem of each image (``"000005"``), in item order.
        class_names: ``tuple[str, ...]``.

    Raises:
        FileNotFoundError: for a missing image-set list, annotation or image file (naming it).
        ValueError: naming the file (and object index) for malformed or forbidden XML (entity expansion), an unknown
            class name, a non-numeric coordinate, ``x2 < x1``, a box outside the image, a ``<difficult>`` other
            than 0/1 or a ``<size>`` that is not a whole number >= 0 (0 means unknown).

    Example::

        >>> train = VOCDetection("data", year=("2007", "2012"), image_set="trainval")  # doctest: +SKIP
        >>> image, target = train[0]  # doctest: +SKIP
    """

    flag_key = "difficult"

    def __init__(
        self,
        root: str | Path,
        year: str | Sequence[str] = "2007",
        image_set: str | Sequence[str] = "trainval",
        keep_difficult: bool = False,
        transforms: Transforms | None = None,
        class_names: Sequence[str] = VOC_CLASSES,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.keep_difficult = keep_difficult
        self._label_of = {name: i for i, name in enumerate(class_names)}
        records: list[Record] = []
        self.image_ids: list[str] = []
        self.num_dropped_zero_area = 0
        for y, s in _splits(year, image_set):
            base = VOCYear.of(root, y)
            for stem in read_image_set(base.image_set(s)):
                records.append(self._parse(base, stem, len(records)))
                self.image_ids.append(stem)
        if self.num_dropped_zero_area:
            logger.warning("VOC %s %s: dropped %d zero-area boxes", year, image_set, self.num_dropped_zero_area)
        super().__init__(records, class_names, transforms, max_pixels)

    def _parse(self, base: VOCYear, stem: str, index: int) -> Record:
        xml = base.annotation(stem)
        if not xml.is_file():
            raise FileNotFoundError(f"VOC annotation not found: {xml}")
        try:
            root = parse_xml(xml).getroot()
        except (ParseError, DefusedXmlException) as err:
            raise ValueError(f"{xml}: malformed or forbidden XML ({type(err).__name__}: {err})") from err
        boxes, labels, difficult, names = [], [], [], []
        for i, obj in enumerate(root.iter("object")):
            where = f"{xml}, object {i}"
            name = _text(obj, "name", where)
            if name not in self._label_of:
                raise ValueError(f"{where}: class {name!r} is not one of {len(self._label_of)} class_names")
            is_difficult = _difficult(obj, where)
            if is_difficult and not self.keep_difficult:
                continue
            bndbox = obj.find("bndbox")
            if bndbox is None:
                raise ValueError(f"{where}: missing <bndbox>")
            x1, y1, x2, y2 = (_number(bndbox, tag, where) for tag in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append((x1 - 1.0, y1 - 1.0, x2, y2))
            labels.append(self._label_of[name])
            difficult.append(is_difficult)
            names.append(f"object {i}")
        image = base.image(stem)
        if not image.is_file():
            raise FileNotFoundError(f"VOC image not found: {image} (annotated in {xml})")
        size = _image_size(root, str(xml))
        width, height = size or (float("inf"), float("inf"))
        box_array = check_boxes(np.asarray(boxes).reshape(-1, 4), width, height, str(xml), names)
        keep = (box_array[:, 2] > box_array[:, 0]) & (box_array[:, 3] > box_array[:, 1])
        self.num_dropped_zero_area += int((~keep).sum())
        return Record(
            path=image,
            boxes=box_array[keep],
            labels=np.asarray(labels, dtype=np.int64)[keep],
            flags=np.asarray(difficult, dtype=bool)[keep],
            image_id=index,
            size=size,
        )
