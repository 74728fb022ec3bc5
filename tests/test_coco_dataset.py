"""COCODetection on a COCO tree written by the tests: label mapping, crowd, empty images, bad input."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
import torch

from lightning_retina.data import COCODetection
from lightning_retina.data.coco import coco_class_names
from tests.data_fixtures import sample_coco, write_coco


@pytest.fixture
def coco_tree(tmp_path: Path):
    return write_coco(tmp_path, "val2017", sample_coco())


def test_categories_map_to_contiguous_labels_in_id_order(coco_tree) -> None:
    dataset = COCODetection(coco_tree.image_dir, coco_tree.ann_file)
    assert dataset.label_to_category_id == {0: 1, 1: 3, 2: 90}
    assert dataset.class_names == ("person", "car", "toothbrush")
    assert coco_class_names(coco_tree.ann_file) == dataset.class_names


def test_reads_boxes_labels_crowd_and_empty_images(coco_tree, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lightning_retina.data.coco"):
        dataset = COCODetection(coco_tree.image_dir, coco_tree.ann_file)
    assert "dropped 1 zero-area" in caplog.text and dataset.num_dropped_zero_area == 1
    assert dataset.image_ids == [3, 7, 12] and len(dataset) == 3
    # hand-converted from sample_coco(): [x, y, w, h] -> [x, y, x + w, y + h]; annotation 6 (w = 0) dropped
    expected = {
        3: ([[4, 5, 10, 12], [10, 20, 30, 60]], [1, 2], [False, False], (60, 30)),
        7: ([[2.5, 3, 12.5, 23], [0, 0, 50, 40]], [0, 2], [False, True], (40, 50)),
        12: (torch.zeros(0, 4), [], [], (20, 20)),
    }
    for index, image_id in enumerate(dataset.image_ids):
        boxes, labels, crowd, size = expected[image_id]
        image, target = dataset[index]
        assert target["image_id"] == image_id
        assert image.shape == (3, *size) and image.dtype == torch.float32
        torch.testing.assert_close(target["boxes"], torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == labels
        assert target["iscrowd"].dtype == torch.bool and target["iscrowd"].tolist() == crowd


def _mutated(tmp_path: Path, change) -> tuple[Path, Path]:
    data = copy.deepcopy(sample_coco())
    change(data)
    tree = write_coco(tmp_path, "val2017", data)
    return tree.image_dir, tree.ann_file


def _set_bbox(value):
    def change(data: dict) -> None:
        data["annotations"][2]["bbox"] = value

    return change


BAD_ANNOTATIONS = {
    "bbox of strings": (_set_bbox(["4", "5", "6", "7"]), r"annotation id 5: 'bbox' must be 4 numbers"),
    "bbox of 3 numbers": (_set_bbox([4, 5, 6]), r"annotation id 5: 'bbox' must be 4 numbers"),
    "negative width": (_set_bbox([4, 5, -2, 7]), r"annotation id 5 has x2 < x1"),
    "outside the image": (_set_bbox([4, 5, 6, 70]), r"annotation id 5 has a box outside the 30x60 image"),
    "unknown category": (lambda d: d["annotations"][2].update(category_id=2), r"annotation id 5: 'category_id' 2 is not the id of any listed category"),
}


@pytest.mark.parametrize("case", list(BAD_ANNOTATIONS))
def test_bad_annotation_raises_naming_file_and_annotation(tmp_path: Path, case: str) -> None:
    change, message = BAD_ANNOTATIONS[case]
    image_dir, ann_file = _mutated(tmp_path, change)
    with pytest.raises(ValueError, match=message) as info:
        COCODetection(image_dir, ann_file)
    assert str(ann_file) in str(info.value)


def test_box_within_one_pixel_of_the_border_is_clipped(tmp_path: Path) -> None:
    image_dir, ann_file = _mutated(tmp_path, _set_bbox([-0.5, 5, 30.75, 55.5]))
    _, target = COCODetection(image_dir, ann_file)[0]
    torch.testing.assert_close(target["boxes"][0], torch.tensor([0.0, 5.0, 30.0, 60.0]))


@pytest.mark.parametrize("text", ['{"images": [', "[1, 2, 3]"])
def test_malformed_json_raises_naming_the_file(coco_tree, text: str) -> None:
    coco_tree.ann_file.write_text(text)
    with pytest.raises(ValueError, match="malformed JSON|not a COCO instances file") as info:
        COCODetection(coco_tree.image_dir, coco_tree.ann_file)
    assert str(coco_tree.ann_file) in str(info.value)


def test_missing_files_raise_naming_them(coco_tree) -> None:
    (coco_tree.image_dir / "b.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=str(coco_tree.image_dir / "b.jpg")):
        COCODetection(coco_tree.image_dir, coco_tree.ann_file)
    missing = coco_tree.ann_file.with_name("nope.json")
    with pytest.raises(FileNotFoundError, match=str(missing)):
        COCODetection(coco_tree.image_dir, missing)


def test_corrupt_image_raises_naming_it(coco_tree) -> None:
    (coco_tree.image_dir / "c.jpg").write_bytes(b"")
    dataset = COCODetection(coco_tree.image_dir, coco_tree.ann_file)
    with pytest.raises(ValueError, match="cannot decode image .*c.jpg"):
        dataset[2]


def test_pycocotools_prints_are_silenced(coco_tree, capsys: pytest.CaptureFixture) -> None:
    COCODetection(coco_tree.image_dir, coco_tree.ann_file)
    assert capsys.readouterr().out == ""
