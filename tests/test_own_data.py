"""Your own data set in: VOC layout with its own class list, a COCO export anywhere, the spec registry, no rewrite."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from lightning.pytorch.trainer.states import TrainerFn

from lightning_retina.data import DetectionDataModule
from lightning_retina.data.coco import COCODetection
from lightning_retina.data.specs import DatasetSpec, register_dataset, registered_datasets
from tests.data_fixtures import VOCImage, VOCObject, sample_coco, write_coco, write_voc

PETS = [
    VOCImage("a", 40, 30, [VOCObject("moon", (1, 1, 20, 20)), VOCObject("star", (5, 5, 30, 25))]),
    VOCImage("b", 40, 30, [VOCObject("star", (2, 2, 12, 12))]),
    VOCImage("c", 40, 30, [VOCObject("moon", (3, 3, 33, 23), difficult=True)]),
]


def _my_voc(root: Path) -> Path:
    write_voc(root, "2007", PETS, {"train": ["a", "b"], "val": ["c"]})
    return root


def _voc(root: Path, **kwargs) -> DetectionDataModule:
    sets = {"voc_train_sets": [("2007", "train")], "voc_test_sets": [("2007", "val")], "num_workers": 0}
    return DetectionDataModule("voc", root, **{**sets, **kwargs})


def folder_digest(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("as_file", [False, True])
def test_voc_layout_with_its_own_class_list(tmp_path: Path, as_file: bool) -> None:
    root = _my_voc(tmp_path / "my_voc")
    names = ["star", "moon"]  # label order is the list's order, not the order found on disk
    if as_file:
        (tmp_path / "classes.txt").write_text("star\n\nmoon\n")
    dm = _voc(root, class_names=str(tmp_path / "classes.txt") if as_file else names)
    assert dm.class_names == ("star", "moon") and dm.num_classes == 2
    dm.prepare_data()
    dm.setup("fit")
    assert dm.datasets["train"][0][1]["labels"].tolist() == [1, 0]  # image "a": moon then star
    val_target = dm.datasets["val"][0][1]
    assert val_target["labels"].tolist() == [1] and val_target["difficult"].tolist() == [True]


def test_voc_layout_without_class_names_lists_the_classes_found(tmp_path: Path) -> None:
    dm = _voc(_my_voc(tmp_path))
    with pytest.raises(ValueError, match=r"not the 20 Pascal VOC classes") as info:
        dm.class_names
    message = str(info.value)
    assert "[moon, star]" in message and "--data.class_names" in message and "text file" in message


@pytest.mark.parametrize(
    ("class_names", "error", "match"),
    [([], ValueError, "at least one"), (["a", "b", "a"], ValueError, r"repeated: \['a'\]"),
     ("nowhere.txt", FileNotFoundError, "nowhere.txt")],
)  # fmt: skip
def test_bad_class_names(tmp_path: Path, class_names, error, match) -> None:
    with pytest.raises(error, match=match):
        _voc(tmp_path, class_names=class_names)


def _coco_export(root: Path) -> Path:
    """An export as CVAT / Label Studio write it: ``images/<split>/`` and ``labels_<split>.json`` side by side."""
    for split in ("train", "val"):
        tree = write_coco(root / "tmp", split, sample_coco())
        (root / "images").mkdir(parents=True, exist_ok=True)
        tree.image_dir.rename(root / "images" / split)
        tree.ann_file.rename(root / f"labels_{split}.json")
    return root


def test_coco_export_in_its_own_folders(tmp_path: Path) -> None:
    root = _coco_export(tmp_path)
    dm = DetectionDataModule(
        "coco", root, num_workers=0, batch_size=2, train_images="images/train", train_annotations="labels_train.json",
        val_images=str(root / "images" / "val"), val_annotations=str(root / "labels_val.json"),  # absolute works too
    )  # fmt: skip
    assert dm.class_names == ("person", "car", "toothbrush")
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    reference = COCODetection(root / "images" / "train", root / "labels_train.json")
    assert dm.datasets["train"].image_ids == reference.image_ids
    assert len(dm.datasets["test"]) == len(dm.datasets["val"]) == 3  # test defaults to the validation split
    assert len(next(iter(dm.train_dataloader()))[0]) == 2


def test_coco_export_checks(tmp_path: Path) -> None:
    root = _coco_export(tmp_path)
    with pytest.raises(ValueError, match="train_images and train_annotations go together"):
        DetectionDataModule("coco", root, train_images="images/train")
    with pytest.raises(ValueError, match="class_names is for VOC"):
        DetectionDataModule("coco", root, class_names=["a"])
    missing = DetectionDataModule("coco", root, val_images="images/val", val_annotations="nope.json")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        missing.class_names
    other = sample_coco()
    other["categories"][0]["name"] = "brush"
    (root / "labels_train.json").write_text(json.dumps(other))
    dm = DetectionDataModule("coco", root, train_images="images/train", train_annotations="labels_train.json",
                             val_images="images/val", val_annotations="labels_val.json")  # fmt: skip
    with pytest.raises(ValueError, match=r"labels_train.json: categories .* differ from those of .*labels_val.json"):
        dm.setup("fit")


def test_coco_2017_layout_still_works(tmp_path: Path) -> None:
    write_coco(tmp_path, "train2017", sample_coco())
    write_coco(tmp_path, "val2017", sample_coco())
    dm = DetectionDataModule("coco", tmp_path, num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 3 and dm.num_classes == 3


def test_a_new_data_set_is_one_registered_spec(tmp_path: Path) -> None:
    @register_dataset("pets_for_test")
    class PetsSpec(DatasetSpec):
        def class_names(self):
            return ("star", "moon")

        def prepare(self, download, fitting=True):
            _my_voc(self.root)

        def build(self, split, transforms):
            from lightning_retina.data import VOCDetection

            return VOCDetection(self.root, "2007", "train" if split == "train" else "val", transforms=transforms,
                                class_names=self.class_names(), keep_difficult=split != "train")  # fmt: skip

    assert {"voc", "coco", "shapes", "pets_for_test"} <= set(registered_datasets())
    dm = DetectionDataModule("pets_for_test", tmp_path, num_workers=0)
    dm.prepare_data()
    dm.setup("validate")
    assert dm.num_classes == 2 and len(dm.datasets["val"]) == 1
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("voc")(PetsSpec)


def test_evaluation_never_rewrites_a_shapes_set(tmp_path: Path) -> None:
    options = {"shapes_num_train": 3, "shapes_num_val": 2, "shapes_image_size": 64, "num_workers": 0}
    DetectionDataModule("shapes", tmp_path, **options).prepare_data()
    before = folder_digest(tmp_path)
    for fn in (TrainerFn.VALIDATING, TrainerFn.TESTING, TrainerFn.PREDICTING):
        dm = DetectionDataModule("shapes", tmp_path, **{**options, "shapes_num_train": 5})
        dm.trainer = SimpleNamespace(state=SimpleNamespace(fn=fn))
        with pytest.raises(ValueError, match=r"--data.shapes_num_train 3 \(asked 5\)"):
            dm.prepare_data()
    assert folder_digest(tmp_path) == before
