"""Inconsistent COCO / VOC annotation files are refused with the file and the id / key / value named.

Each case changes one thing in the valid ``sample_coco()`` file (which reads fine, see ``test_coco_dataset``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from lightning_retina.data import COCODetection, VOCDetection
from lightning_retina.data.coco import coco_class_names
from tests.data_fixtures import VOCImage, VOCObject, sample_coco, voc_xml, write_coco, write_voc


def _image(i: int, **changes) -> Callable[[dict], None]:
    return lambda d: d["images"][i].update(changes)


def _ann(i: int, **changes) -> Callable[[dict], None]:
    return lambda d: d["annotations"][i].update(changes)


def _category(i: int, **changes) -> Callable[[dict], None]:
    return lambda d: d["categories"][i].update(changes)


def _drop(key: str, i: int, field: str) -> Callable[[dict], None]:
    return lambda d: d[key][i].pop(field)


# sample_coco(): images 7 (a.jpg), 3 (b.jpg), 12 (c.jpg); annotations 1, 2 (crowd), 5, 6, 9; categories 90, 1, 3
BAD_COCO = {
    "two images with one id": (_image(1, id=7), r"two entries of 'images' have the id 7"),
    "annotation of an unlisted image": (_ann(2, image_id=99), r"annotation id 5: 'image_id' 99 is not the id of any"),
    "two categories with one id": (_category(2, id=1), r"two entries of 'categories' have the id 1"),
    "two annotations with one id": (_ann(2, id=1), r"two entries of 'annotations' have the id 1"),
    "image without file_name": (_drop("images", 0, "file_name"), r"image id 7: 'file_name' must be a non-empty string"),
    "category without name": (_drop("categories", 0, "name"), r"category id 90: 'name' must be a non-empty string"),
    "width as a string": (_image(0, width="64"), r"image id 7: 'width' must be a positive integer, got '64'"),
    "height null": (_image(0, height=None), r"image id 7: 'height' must be a positive integer, got None"),
    "mixed str/int image ids": (_image(2, id="12"), r"images\[2\] 'id' must be an integer, got '12'"),
    "string image_id in an annotation": (_ann(0, image_id="7"), r"annotation id 1: 'image_id' must be an integer"),
    "iscrowd as a string": (_ann(0, iscrowd="0"), r"annotation id 1: 'iscrowd' must be 0, 1, true or false, got '0'"),
    "iscrowd 2": (_ann(0, iscrowd=2), r"annotation id 1: 'iscrowd' must be 0, 1, true or false, got 2"),
    "float category_id": (_ann(0, category_id=1.0), r"annotation id 1: 'category_id' must be an integer, got 1.0"),
    "fractional category id": (_category(1, id=1.5), r"categories\[1\] 'id' must be an integer, got 1.5"),
    "annotations not a list": (lambda d: d.update(annotations={}), r"'annotations' must be a list"),
}


def _all_string_ids(data: dict) -> None:
    for image in data["images"]:
        image["id"] = f"img{image['id']}"
    for ann in data["annotations"]:
        ann["image_id"] = f"img{ann['image_id']}"


BAD_COCO["all-string image ids"] = (_all_string_ids, r"images\[0\] 'id' must be an integer, got 'img7'")


@pytest.mark.parametrize("case", list(BAD_COCO))
def test_inconsistent_coco_file_is_refused_naming_file_and_id(tmp_path: Path, case: str) -> None:
    change, message = BAD_COCO[case]
    data = copy.deepcopy(sample_coco())
    tree = write_coco(tmp_path, "val2017", data)
    change(data)
    tree.ann_file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as info:
        COCODetection(tree.image_dir, tree.ann_file)
    assert str(tree.ann_file) in str(info.value)


@pytest.mark.parametrize("case", ["two categories with one id", "category without name", "fractional category id"])
def test_class_names_apply_the_same_category_checks(tmp_path: Path, case: str) -> None:
    change, message = BAD_COCO[case]
    data = copy.deepcopy(sample_coco())
    change(data)
    tree = write_coco(tmp_path, "val2017", data)
    with pytest.raises(ValueError, match=message):
        coco_class_names(tree.ann_file)


@pytest.mark.parametrize(("value", "crowd"), [(0, False), (1, True), (False, False), (True, True), (None, False)])
def test_iscrowd_accepts_zero_one_and_booleans(tmp_path: Path, value, crowd: bool) -> None:
    data = copy.deepcopy(sample_coco())
    if value is None:
        del data["annotations"][0]["iscrowd"]  # absent: not crowd
    else:
        data["annotations"][0]["iscrowd"] = value
    tree = write_coco(tmp_path, "val2017", data)
    dataset = COCODetection(tree.image_dir, tree.ann_file)
    _, target = dataset[dataset.image_ids.index(7)]
    assert target["iscrowd"].tolist() == [crowd, True]  # annotation 1, then the crowd annotation 2


def _voc_with(tmp_path: Path, xml_text: Callable[[str], str]) -> Path:
    image = VOCImage("000001", 30, 20, [VOCObject("dog", (2, 3, 25, 18))])
    base = write_voc(tmp_path, "2007", [image], {"val": ["000001"]})
    xml = base / "Annotations" / "000001.xml"
    xml.write_text(xml_text(voc_xml(image)))
    return xml


BAD_VOC = {
    "difficult yes": (lambda t: t.replace("<difficult>0</difficult>", "<difficult>yes</difficult>"),
                      r"object 0: <difficult> is 'yes', not 0 or 1"),
    "difficult 2": (lambda t: t.replace("<difficult>0</difficult>", "<difficult>2</difficult>"),
                    r"object 0: <difficult> is '2', not 0 or 1"),
    "width -5": (lambda t: t.replace("<width>30</width>", "<width>-5</width>"), r"<size><width> is -5"),
    "height 20.5": (lambda t: t.replace("<height>20</height>", "<height>20.5</height>"), r"<size><height> is 20.5"),
    "width nan": (lambda t: t.replace("<width>30</width>", "<width>nan</width>"), r"<width> is 'nan', not a finite"),
    # re-attack: a non-finite coordinate is named by its tag (was "object 0 has a non-finite coordinate: [...]")
    "xmin nan": (lambda t: t.replace("<xmin>2</xmin>", "<xmin>nan</xmin>"),
                 r"object 0: <xmin> is 'nan', not a finite number"),
    "ymax -inf": (lambda t: t.replace("<ymax>18</ymax>", "<ymax>-inf</ymax>"),
                  r"object 0: <ymax> is '-inf', not a finite number"),
    "width abc": (lambda t: t.replace("<width>30</width>", "<width>abc</width>"), r"<width> is 'abc', not a number"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_VOC))
def test_bad_voc_values_are_refused_naming_file_and_value(tmp_path: Path, case: str) -> None:
    change, message = BAD_VOC[case]
    xml = _voc_with(tmp_path, change)
    with pytest.raises(ValueError, match=message) as info:
        VOCDetection(tmp_path, "2007", "val", keep_difficult=True)
    assert str(xml) in str(info.value)


@pytest.mark.parametrize(("text", "difficult"), [("1", True), ("true", True), ("0", False), ("", False)])
def test_voc_difficult_values_accepted(tmp_path: Path, text: str, difficult: bool) -> None:
    _voc_with(tmp_path, lambda t: t.replace("<difficult>0</difficult>", f"<difficult>{text}</difficult>"))
    _, target = VOCDetection(tmp_path, "2007", "val", keep_difficult=True)[0]
    assert target["difficult"].tolist() == [difficult]


def test_voc_size_zero_means_unknown(tmp_path: Path) -> None:
    _voc_with(tmp_path, lambda t: t.replace("<width>30</width>", "<width>0</width>"))
    _, target = VOCDetection(tmp_path, "2007", "val")[0]  # no size to compare: no warning, boxes checked on pixels
    assert target["boxes"].tolist() == [[1.0, 2.0, 25.0, 18.0]]
