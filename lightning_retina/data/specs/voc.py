"""The ``"voc"`` data set: Pascal VOC 07/12, or any data set in the VOC devkit layout with its own class list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import parse as parse_xml

from lightning_retina.data._records import Transforms
from lightning_retina.data.download import ensure_voc
from lightning_retina.data.layout import VOCYear, read_image_set
from lightning_retina.data.specs.base import DatasetSpec, Split, load_class_names, register_dataset
from lightning_retina.data.voc import VOC_CLASSES, VOCDetection

VOC_TRAIN_SETS = (("2007", "trainval"), ("2012", "trainval"))
VOC_TEST_SETS = (("2007", "test"),)


def voc_class_names_found(root: str | Path, sets: Sequence[tuple[str, str]]) -> list[str]:
    """The sorted ``<object><name>`` values in the annotations of the ``(year, image_set)`` splits found under ``root``.

    Splits, annotations or XML files that are missing or malformed are passed over: the reader reports them.
    """
    names: set[str] = set()
    for year, image_set in sets:
        base = VOCYear.of(root, year)
        if not base.image_set(image_set).is_file():
            continue
        for stem in read_image_set(base.image_set(image_set)):
            try:
                tree = parse_xml(base.annotation(stem))
            except (OSError, ParseError, DefusedXmlException):
                continue
            names.update(n.text.strip() for n in tree.getroot().iterfind("object/name") if n.text)
    return sorted(names)


@register_dataset("voc")
class VOCSpec(DatasetSpec):
    """Pascal VOC: trains on ``voc_train_sets`` (07+12 trainval), validates and tests on ``voc_test_sets`` (07 test).

    Any data set in the devkit layout works (``<root>/VOCdevkit/VOC<year>/{JPEGImages, Annotations,
    ImageSets/Main}``) with its own ``class_names``: a list, or a text file with one name a line (label order). Without
    them the 20 VOC classes are used, and a folder whose annotations name other classes is refused with the names
    found in them. Training drops ``difficult`` objects; evaluation keeps them (flagged).

    Options read: ``voc_train_sets``, ``voc_test_sets``, ``class_names``.
    """

    def __init__(self, root: Path, options: Mapping[str, Any]) -> None:
        super().__init__(root, options)
        self.train_sets = [(str(y), s) for y, s in options.get("voc_train_sets", VOC_TRAIN_SETS)]
        self.test_sets = [(str(y), s) for y, s in options.get("voc_test_sets", VOC_TEST_SETS)]
        self._class_names = load_class_names(options.get("class_names"))

    def class_names(self) -> tuple[str, ...]:
        """The given ``class_names``, else the 20 VOC classes once the annotations on disk are checked to fit them.

        Raises:
            ValueError: without ``class_names``, when the annotations name classes that are not VOC classes; the
                message lists the names found and how to pass them.
        """
        if self._class_names is None:
            found = voc_class_names_found(self.root, list(dict.fromkeys(self.train_sets + self.test_sets)))
            others = [name for name in found if name not in VOC_CLASSES]
            if others:
                listed = ", ".join(found)
                raise ValueError(
                    f"the VOC-layout data set in {self.root} has classes that are not the 20 Pascal VOC classes "
                    f"({others}); its annotations name {len(found)} classes: [{listed}]. Pass your class list in "
                    f"label order: --data.class_names \"[{listed}]\" on the command line, `class_names: [{listed}]` "
                    "under `data:` in a config, class_names=[...] in Python, or the path of a text file with one "
                    "name a line (--data.class_names classes.txt)."
                )
            self._class_names = VOC_CLASSES
        return self._class_names

    def prepare(self, download: bool, fitting: bool = True) -> None:
        for year, image_set in dict.fromkeys(self.train_sets + self.test_sets):
            ensure_voc(self.root, year, image_set, download)

    def build(self, split: Split, transforms: Transforms) -> VOCDetection:
        train = split == "train"
        sets = self.train_sets if train else self.test_sets
        return VOCDetection(
            self.root, [y for y, _ in sets], [s for _, s in sets], keep_difficult=not train, transforms=transforms,
            class_names=self.class_names(), max_pixels=self.max_pixels,
        )  # fmt: skip
