"""Data set specs registered by name: ``"voc"``, ``"coco"`` and ``"shapes"`` (one file each), and the registry."""

from lightning_retina.data.specs.base import (
    DatasetSpec,
    Split,
    dataset_spec,
    load_class_names,
    register_dataset,
    registered_datasets,
)
from lightning_retina.data.specs.coco import COCOSpec
from lightning_retina.data.specs.shapes import ShapesSpec
from lightning_retina.data.specs.voc import VOCSpec, voc_class_names_found

__all__ = [
    "COCOSpec",
    "DatasetSpec",
    "ShapesSpec",
    "Split",
    "VOCSpec",
    "dataset_spec",
    "load_class_names",
    "register_dataset",
    "registered_datasets",
    "voc_class_names_found",
]
