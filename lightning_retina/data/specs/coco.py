"""The ``"coco"`` data set: COCO 2017, or any COCO-format export (CVAT, Label Studio, Roboflow) where it lies."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning_retina.data._records import Transforms
from lightning_retina.data.coco import COCODetection, coco_category_ids, coco_class_names
from lightning_retina.data.download import ensure_coco
from lightning_retina.data.layout import coco_paths
from lightning_retina.data.specs.base import DatasetSpec, Split, register_dataset


@register_dataset("coco")
class COCOSpec(DatasetSpec):
    """COCO-format data: an image folder and an annotation file per split; class names from the annotations.

    Each split is either given as ``<split>_images`` (the folder that ``file_name`` in the JSON is relative to) and
    ``<split>_annotations`` (the JSON file), both relative to ``root`` unless absolute, or, when both are left out,
    found in the COCO 2017 layout under ``root``: ``<root>/<coco_train>/`` + ``<root>/annotations/
    instances_<coco_train>.json`` for training and the same with ``coco_val`` for validation. The test split
    defaults to the validation split. Class names are the categories of the validation file in increasing id order;
    every split must have the same categories.

    Options read: ``coco_train``, ``coco_val`` and ``{train,val,test}_{images,annotations}``.

    Raises:
        ValueError: when only one of ``<split>_images`` / ``<split>_annotations`` is given, or with ``class_names``
            (COCO files carry their own).
    """

    def __init__(self, root: Path, options: Mapping[str, Any]) -> None:
        super().__init__(root, options)
        if options.get("class_names") is not None:
            raise ValueError(
                "class_names is for VOC-layout data; COCO files name their classes in 'categories' "
                f"(got class_names={options['class_names']!r} with dataset='coco')"
            )
        for split in ("train", "val", "test"):
            images, annotations = options.get(f"{split}_images"), options.get(f"{split}_annotations")
            if (images is None) != (annotations is None):
                raise ValueError(
                    f"{split}_images and {split}_annotations go together (an image folder and its COCO JSON file), "
                    f"got {split}_images={images!r}, {split}_annotations={annotations!r}"
                )
        self._class_names: tuple[str, ...] | None = None

    def _custom(self, split: Split) -> tuple[Path, Path] | None:
        images, annotations = self.options.get(f"{split}_images"), self.options.get(f"{split}_annotations")
        return None if images is None else (self.root / images, self.root / annotations)

    def _coco2017_split(self, split: Split) -> str:
        if split == "train":
            return self.options.get("coco_train", "train2017")
        return self.options.get("coco_val", "val2017")

    def paths(self, split: Split) -> tuple[Path, Path]:
        """``(image folder, annotation file)`` of ``split``."""
        custom = self._custom(split)
        if custom is None and split == "test":
            return self.paths("val")
        return custom if custom is not None else coco_paths(self.root, self._coco2017_split(split))

    def _check(self, split: Split, download: bool) -> None:
        custom = self._custom(split)
        if custom is None:
            ensure_coco(self.root, self._coco2017_split(split), download)
            return
        missing = [str(path) for path in custom if not path.exists()]
        if missing:
            raise FileNotFoundError(
                f"COCO {split} split not found: {' and '.join(missing)} (from {split}_images / {split}_annotations "
                f"relative to root={self.root})"
            )

    def class_names(self) -> tuple[str, ...]:
        """The category names of the validation annotation file, in increasing category id order.

        Raises:
            FileNotFoundError: when the file is not there, saying where it is expected and how to get it.
        """
        if self._class_names is None:
            self._check("val", download=False)  # no download here: only says what is missing
            self._class_names = coco_class_names(self.paths("val")[1])
        return self._class_names

    def category_ids(self) -> tuple[int, ...]:
        """The category ids of the validation annotation file in label order (increasing id)."""
        self.class_names()  # checks the file is there
        return coco_category_ids(self.paths("val")[1])

    def prepare(self, download: bool, fitting: bool = True) -> None:
        splits = ("train", "val", "test") if self._custom("test") else ("train", "val")
        for split in splits:
            self._check(split, download)

    def build(self, split: Split, transforms: Transforms) -> COCODetection:
        """The reader of ``split``.

        Raises:
            ValueError: when its categories differ from the validation file's (labels would not match).
        """
        image_dir, ann_file = self.paths(split)
        dataset = COCODetection(image_dir, ann_file, transforms=transforms, max_pixels=self.max_pixels)
        if tuple(dataset.class_names) != self.class_names():
            raise ValueError(
                f"{ann_file}: categories {list(dataset.class_names)} differ from those of {self.paths('val')[1]} "
                f"{list(self.class_names())}; every split needs the same categories (the same labels)"
            )
        return dataset
