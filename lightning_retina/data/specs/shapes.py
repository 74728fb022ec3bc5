"""The ``"shapes"`` data set: drawn circles, squares, triangles and stars, generated on first use."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from lightning_retina.data._records import Transforms
from lightning_retina.data.coco import COCODetection
from lightning_retina.data.layout import coco_paths
from lightning_retina.data.specs.base import DatasetSpec, Split, register_dataset
from lightning_retina.data.synthetic import (
    DEFAULT_DRAWING,
    SHAPES_CLASSES,
    SHAPES_FORMATS,
    drawing_arguments,
    make_shapes_dataset,
    shapes_manifest,
)
from lightning_retina.data.voc import VOCDetection


@register_dataset("shapes")
class ShapesSpec(DatasetSpec):
    """The synthetic shapes set (:func:`~lightning_retina.data.make_shapes_dataset`) in ``root``.

    Its ``train`` split trains; its ``val`` split validates and tests. ``prepare`` generates the set when ``root``
    holds none; a set that ``root/shapes.json`` says was made with other settings is generated again only to fit.
    Validation, test and predict never rewrite files: there a mismatch is an error naming both settings.

    Options read: ``shapes_format``, ``shapes_num_train``, ``shapes_num_val``, ``shapes_image_size``,
    ``shapes_objects_per_image``, ``shapes_shape_sizes``, ``shapes_crowd_probability`` (the drawing arguments of
    :func:`~lightning_retina.data.make_shapes_dataset`) and ``seed`` (the seed of the drawn images).

    Raises:
        ValueError: for an unknown ``shapes_format`` or a drawing option out of range (naming it).
    """

    def __init__(self, root: Path, options: Mapping[str, Any]) -> None:
        super().__init__(root, options)
        self.format = options.get("shapes_format", "coco")
        if self.format not in SHAPES_FORMATS:
            raise ValueError(f"shapes_format must be one of {SHAPES_FORMATS}, got {self.format!r}")
        self.settings = {
            "format": self.format,
            "num_train": options.get("shapes_num_train", 1500),
            "num_val": options.get("shapes_num_val", 200),
            "image_size": options.get("shapes_image_size", 256),
            "seed": options.get("seed", 0),
            **drawing_arguments(
                options.get("shapes_image_size", 256),
                options.get("shapes_objects_per_image", DEFAULT_DRAWING["objects_per_image"]),
                options.get("shapes_shape_sizes", DEFAULT_DRAWING["shape_sizes"]),
                options.get("shapes_crowd_probability", DEFAULT_DRAWING["crowd_probability"]),
            ),
        }

    def class_names(self) -> tuple[str, ...]:
        return SHAPES_CLASSES

    def category_ids(self) -> tuple[int, ...] | None:
        """COCO layout: the category ids 1..K that :func:`make_shapes_dataset` writes; VOC layout: none."""
        return tuple(range(1, len(SHAPES_CLASSES) + 1)) if self.format == "coco" else None

    def prepare(self, download: bool, fitting: bool = True) -> None:
        """Generate the set unless ``root`` holds it with these settings.

        Raises:
            ValueError: outside fit, when ``root`` holds a set made with other settings.
        """
        found = shapes_manifest(self.root)
        if found == self.settings:
            return
        if found is not None and not fitting:
            differ = ", ".join(  # every option is shapes_<key>, but for the seed
                f"--data.{k if k == 'seed' else 'shapes_' + k} {found.get(k)!r} (asked {v!r})"
                for k, v in self.settings.items()
                if found.get(k) != v
            )
            raise ValueError(
                f"{self.root} holds a shapes set made with {found}, not {self.settings}; validate / test / predict "
                f"never rewrite data. Pass its settings ({differ}), or another --data.root."
            )
        make_shapes_dataset(self.root, **self.settings)

    def build(self, split: Split, transforms: Transforms) -> Dataset:
        train = split == "train"
        shapes_split = "train" if train else "val"
        if self.format == "voc":
            return VOCDetection(
                self.root, "2007", shapes_split, keep_difficult=not train, transforms=transforms,
                class_names=SHAPES_CLASSES, max_pixels=self.max_pixels,
            )  # fmt: skip
        return COCODetection(*coco_paths(self.root, shapes_split), transforms=transforms, max_pixels=self.max_pixels)
