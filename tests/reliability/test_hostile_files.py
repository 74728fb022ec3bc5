"""Hostile and broken files through the path training takes: ``DetectionDataModule.setup`` and its DataLoader.

The readers' own tests (``tests/test_voc_dataset.py``, ``tests/test_coco_dataset.py``) cover an entity bomb,
malformed XML/JSON, a bbox of strings and undecodable images at the reader level. Here the same kinds of file
reach the user through ``setup`` and through a DataLoader *worker process*, plus cases the readers' tests lack:
an external entity, zero-byte annotation files, a NaN coordinate, deeply nested JSON and a decompression bomb.
"""

from __future__ import annotations

import copy
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from lightning_retina.data import DetectionDataModule
from tests.data_fixtures import sample_coco, sample_voc_images, write_coco, write_voc
from tests.reliability.conftest import SIZE
from tests.test_voc_dataset import BOMB

XXE = """<?xml version="1.0"?>
<!DOCTYPE annotation [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<annotation><filename>&secret;</filename></annotation>
"""

VOC_XML = {  # the reader's message says "malformed or forbidden XML" either way: match defusedxml's refusal itself
    "entity bomb": (BOMB, "EntitiesForbidden"),
    "external entity": (XXE, "EntitiesForbidden.*file:///etc/passwd"),
    "zero bytes": ("", "malformed .*ParseError"),
}


@pytest.mark.parametrize("case", list(VOC_XML))
def test_voc_annotation_refused_by_setup_naming_the_file(tmp_path: Path, case: str) -> None:
    stems = [image.stem for image in sample_voc_images()]
    base = write_voc(tmp_path, "2007", sample_voc_images(), {"trainval": stems, "test": stems})
    text, message = VOC_XML[case]
    xml = base / "Annotations" / f"{stems[1]}.xml"
    xml.write_text(text)
    dm = DetectionDataModule("voc", str(tmp_path), num_workers=0, voc_train_sets=[("2007", "trainval")],
                             voc_test_sets=[("2007", "test")])  # fmt: skip
    dm.prepare_data()
    with pytest.raises(ValueError, match=message) as info:
        dm.setup("fit")
    assert str(xml) in str(info.value)


def _set_bbox(value) -> Callable[[str], str]:
    def change(text: str) -> str:
        data = json.loads(text)
        data["annotations"][2]["bbox"] = value
        return json.dumps(data)

    return change


COCO_JSON = {
    "bbox of 4 strings": (_set_bbox(["4", "5", "6", "7"]), "'bbox' must be 4 numbers"),
    "NaN coordinate": (_set_bbox([float("nan"), 5, 6, 7]), "non-finite coordinate"),  # json writes NaN, Python reads it
    "zero bytes": (lambda text: "", "malformed JSON"),
    "deeply nested": (lambda text: "[" * 100_000 + "]" * 100_000, ""),
}


@pytest.mark.parametrize(
    "case", list(COCO_JSON)
)
def test_coco_annotation_refused_by_setup_naming_the_file(tmp_path: Path, case: str) -> None:
    for split in ("train2017", "val2017"):
        write_coco(tmp_path, split, copy.deepcopy(sample_coco()))
    change, message = COCO_JSON[case]
    train_json = tmp_path / "annotations" / "instances_train2017.json"
    train_json.write_text(change(train_json.read_text()))
    dm = DetectionDataModule("coco", str(tmp_path), num_workers=0)
    dm.prepare_data()
    with pytest.raises(ValueError, match=message) as info:
        dm.setup("fit")
    assert str(train_json) in str(info.value)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _decompression_bomb(path: Path) -> None:
    """A 69-byte PNG whose header claims 30000 x 30000 pixels (PIL refuses it before decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
                     + chunk(b"IEND", b""))  # fmt: skip


IMAGES = {
    "truncated JPEG": _truncate,
    "zero bytes": lambda path: path.write_bytes(b""),
    "decompression bomb": _decompression_bomb,
}


@pytest.mark.parametrize("case", list(IMAGES))
def test_bad_image_in_a_loader_worker_names_the_file(tmp_path: Path, case: str) -> None:
    dm = DetectionDataModule("shapes", str(tmp_path), batch_size=2, num_workers=1, persistent_workers=False,
                             shapes_num_train=2, shapes_num_val=1, shapes_image_size=SIZE)  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    image = sorted((tmp_path / "train").glob("*.jpg"))[1]
    IMAGES[case](image)
    with pytest.raises(ValueError, match="cannot decode image") as info:
        next(iter(dm.train_dataloader()))
    assert "DataLoader worker process" in str(info.value) and str(image) in str(info.value)
