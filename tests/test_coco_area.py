"""COCODetection carries each annotation's ``area`` (the segment area COCO's small/medium/large use) into targets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_retina.data import COCODetection
from lightning_retina.metrics import metric_target
from tests.data_fixtures import sample_coco, write_coco


def test_target_area_is_the_annotation_area_or_the_box_area(tmp_path: Path) -> None:
    data = sample_coco()  # its areas equal the box areas: make them differ
    data["annotations"][0]["area"] = 150.5  # annotation 1, box 10x20
    data["annotations"][4]["area"] = 333.25  # annotation 9, box 20x40
    del data["annotations"][2]["area"]  # annotation 5 (image 3, box 6x7): falls back to the box area
    tree = write_coco(tmp_path, "val", data)
    dataset = COCODetection(tree.image_dir, tree.ann_file)
    areas = {image_id: dataset[i][1]["area"] for i, image_id in enumerate(dataset.image_ids)}
    # image 7: annotations 1, 2; image 3: annotations 5 (no area -> 6 * 7), 6 (zero-area box, dropped), 9
    assert areas[7].dtype == torch.float32 and areas[7].tolist() == [150.5, 2000.0]
    assert areas[3].tolist() == [42.0, 333.25]
    assert areas[12].shape == (0,)
    assert metric_target(dataset[0][1])["area"].tolist() == areas[dataset.image_ids[0]].tolist()


def test_non_positive_area_falls_back_to_the_box_area(tmp_path: Path) -> None:
    data = sample_coco()
    data["annotations"][2]["area"] = -3.0  # annotation 5: box 6x7
    data["annotations"][4]["area"] = 0  # annotation 9: box 20x40
    data["annotations"][2]["bbox"] = [4, 5, 6.5, 7]
    tree = write_coco(tmp_path, "val", data)
    dataset = COCODetection(tree.image_dir, tree.ann_file)
    assert dataset[dataset.image_ids.index(3)][1]["area"].tolist() == [45.5, 800.0]


@pytest.mark.parametrize("area", ["12", None, True])
def test_bad_area_raises_naming_file_and_annotation(tmp_path: Path, area: object) -> None:
    data = sample_coco()
    data["annotations"][4]["area"] = area
    tree = write_coco(tmp_path, "val", data)
    with pytest.raises(ValueError, match=r"annotation id 9: 'area' must be a finite number") as info:
        COCODetection(tree.image_dir, tree.ann_file)
    assert str(tree.ann_file) in str(info.value)
