"""VOCDetection on VOC trees written by the tests: exact read-back and an error naming the file for bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from lightning_retina.data import VOC_CLASSES, VOCDetection
from tests.data_fixtures import VOCImage, VOCObject, sample_voc_images, voc_xml, write_voc

STEMS = ["000005", "000007", "000009"]


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    write_voc(tmp_path, "2007", sample_voc_images(), {"trainval": STEMS, "test": STEMS[:1]})
    return tmp_path


def _expected(keep_difficult: bool) -> list[tuple[list[list[float]], list[int], list[bool]]]:
    """Boxes / labels / difficult derived by hand from ``sample_voc_images``: (xmin - 1, ymin - 1, xmax, ymax)."""
    dog, person, tv = VOC_CLASSES.index("dog"), VOC_CLASSES.index("person"), VOC_CLASSES.index("tvmonitor")
    first = [([0, 0, 20, 30], dog, False), ([9, 4, 64, 48], person, True), ([39.5, 1, 50, 12.5], tv, False)]
    third = [([1, 2, 32, 32], VOC_CLASSES.index("car"), True)]
    per_image = [first, [([4, 5, 20, 25], VOC_CLASSES.index("bird"), False)], third]
    kept = [[o for o in objs if keep_difficult or not o[2]] for objs in per_image]
    return [([o[0] for o in objs], [o[1] for o in objs], [o[2] for o in objs]) for objs in kept]


@pytest.mark.parametrize("keep_difficult", [True, False])
def test_reads_boxes_labels_and_flags_exactly(voc_root: Path, keep_difficult: bool) -> None:
    dataset = VOCDetection(voc_root, "2007", "trainval", keep_difficult=keep_difficult)
    assert len(dataset) == 3 and dataset.image_ids == STEMS and dataset.class_names == VOC_CLASSES
    for index, (boxes, labels, difficult) in enumerate(_expected(keep_difficult)):
        image, target = dataset[index]
        assert target["image_id"] == index
        assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
        torch.testing.assert_close(target["boxes"], torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        assert target["labels"].tolist() == labels
        assert target["difficult"].dtype == torch.bool and target["difficult"].tolist() == difficult
        assert image.dtype == torch.float32 and image.shape[0] == 3


def test_grayscale_and_cmyk_jpegs_become_rgb(voc_root: Path) -> None:
    dataset = VOCDetection(voc_root, "2007", "trainval")
    gray, _ = dataset[1]
    assert gray.shape == (3, 30, 40)
    torch.testing.assert_close(gray, torch.full_like(gray, 128 / 255), atol=2 / 255, rtol=0)
    cmyk, _ = dataset[2]  # C=0, M=255, Y=255, K=0 is red
    assert cmyk.shape == (3, 32, 32)
    red = torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand_as(cmyk)
    torch.testing.assert_close(cmyk, red, atol=6 / 255, rtol=0)


def test_zero_area_box_dropped_and_counted(voc_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lightning_retina.data.voc"):
        dataset = VOCDetection(voc_root, "2007", "trainval", keep_difficult=True)
    assert dataset.num_dropped_zero_area == 1
    assert "dropped 1 zero-area" in caplog.text


def test_root_may_be_the_devkit_folder(voc_root: Path) -> None:
    a = VOCDetection(voc_root, "2007", "test")
    b = VOCDetection(voc_root / "VOCdevkit", "2007", "test")
    assert a.image_ids == b.image_ids == ["000005"]
    torch.testing.assert_close(a[0][1]["boxes"], b[0][1]["boxes"])


def test_years_concatenate(voc_root: Path) -> None:
    write_voc(voc_root, "2012", [VOCImage("2012_000001", 20, 20, [VOCObject("sheep", (3, 4, 10, 12))])],
              {"trainval": ["2012_000001"]})  # fmt: skip
    dataset = VOCDetection(voc_root, year=("2007", "2012"), image_set="trainval")
    assert len(dataset) == 4 and dataset.image_ids == [*STEMS, "2012_000001"]
    _, target = dataset[3]
    assert target["image_id"] == 3 and target["labels"].tolist() == [VOC_CLASSES.index("sheep")]
    torch.testing.assert_close(target["boxes"], torch.tensor([[2.0, 3.0, 10.0, 12.0]]))


def test_custom_class_names_and_an_image_without_objects(tmp_path: Path) -> None:
    write_voc(tmp_path, "2007", [VOCImage("a", 16, 16, [VOCObject("b", (1, 1, 16, 16))]), VOCImage("e", 16, 16)],
              {"train": ["a", "e"]})  # fmt: skip
    dataset = VOCDetection(tmp_path, "2007", "train", class_names=("a", "b"))
    assert dataset[0][1]["labels"].tolist() == [1]
    _, empty = dataset[1]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["difficult"].shape == (0,)


def test_transforms_receive_the_sample(voc_root: Path) -> None:
    def flip(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        width = image.shape[-1]
        boxes = target["boxes"][:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor([width, 0, width, 0])
        return image.flip(-1), {**target, "boxes": boxes}

    plain, flipped = VOCDetection(voc_root, "2007", "test"), VOCDetection(voc_root, "2007", "test", transforms=flip)
    torch.testing.assert_close(flipped[0][1]["boxes"], torch.tensor([[44.0, 0.0, 64.0, 30.0], [14.0, 1.0, 24.5, 12.5]]))
    torch.testing.assert_close(flipped[0][0], plain[0][0].flip(-1))


# ------------------------------------------------------------------------------------------------ bad input
def _rewrite_xml(base: Path, stem: str, text: str) -> None:
    (base / "Annotations" / f"{stem}.xml").write_text(text)


def _replace_object(image: VOCImage, obj: VOCObject) -> VOCImage:
    return VOCImage(image.stem, image.width, image.height, [image.objects[0], obj], image.mode, image.colour)


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<annotation><filename>&lol3;</filename></annotation>
"""

XML_CASES = {
    "malformed": ("<annotation><object><name>dog</name>", "malformed or forbidden XML \\(ParseError"),
    "entity bomb": (BOMB, "malformed or forbidden XML \\(EntitiesForbidden"),
    "unknown class": (voc_xml(_replace_object(sample_voc_images()[0], VOCObject("unicorn", (1, 1, 5, 5)))),
                      r"object 1: class 'unicorn'"),
    "x2 < x1": (voc_xml(_replace_object(sample_voc_images()[0], VOCObject("dog", (30, 1, 10, 5)))),
                r"object 1 has x2 < x1"),
    "outside": (voc_xml(_replace_object(sample_voc_images()[0], VOCObject("dog", (1, 1, 80, 5)))),
                r"object 1 has a box outside the 64x48 image"),
    "not a number": (voc_xml(_replace_object(sample_voc_images()[0], VOCObject("dog", (1, 1, 5, 5)))).replace(
        "<xmax>5</xmax>", "<xmax>five</xmax>"), r"object 1: <xmax> is 'five'"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(XML_CASES))
def test_bad_annotation_raises_naming_the_file(voc_root: Path, case: str) -> None:
    text, message = XML_CASES[case]
    base = voc_root / "VOCdevkit" / "VOC2007"
    _rewrite_xml(base, "000005", text)
    with pytest.raises(ValueError, match=message) as info:
        VOCDetection(voc_root, "2007", "trainval")
    assert str(base / "Annotations" / "000005.xml") in str(info.value)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


IMAGE_CASES = {
    "zero bytes": lambda p: p.write_bytes(b""),
    "not an image": lambda p: p.write_bytes(b"this is not a jpeg" * 20),
    "truncated": _truncate,
}


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_bad_image_raises_naming_the_file(tmp_path: Path, case: str) -> None:
    noisy = VOCImage("000001", 64, 64, [VOCObject("dog", (1, 1, 5, 5))])
    base = write_voc(tmp_path, "2007", [noisy], {"test": ["000001"]})
    image = base / "JPEGImages" / "000001.jpg"
    torch.manual_seed(0)
    Image.fromarray((torch.rand(64, 64, 3) * 255).byte().numpy()).save(image, quality=95)
    IMAGE_CASES[case](image)
    dataset = VOCDetection(tmp_path, "2007", "test")
    with pytest.raises(ValueError, match="cannot decode image") as info:
        dataset[0]
    assert str(image) in str(info.value)


@pytest.mark.parametrize("missing", ["JPEGImages/000007.jpg", "Annotations/000007.xml", "ImageSets/Main/trainval.txt"])
def test_missing_file_raises_naming_it(voc_root: Path, missing: str) -> None:
    path = voc_root / "VOCdevkit" / "VOC2007" / missing
    path.unlink()
    with pytest.raises(FileNotFoundError, match=str(path)):
        VOCDetection(voc_root, "2007", "trainval")


def test_image_smaller_than_its_annotation_raises_on_load(voc_root: Path) -> None:
    base = voc_root / "VOCdevkit" / "VOC2007"
    Image.new("RGB", (20, 20)).save(base / "JPEGImages" / "000005.jpg")  # the XML says 64x48
    dataset = VOCDetection(voc_root, "2007", "test")
    with pytest.raises(ValueError, match="outside the 20x20 image") as info:
        dataset[0]
    assert "000005.jpg" in str(info.value)


def test_mismatched_year_and_image_set_lists(voc_root: Path) -> None:
    with pytest.raises(ValueError, match="pair up"):
        VOCDetection(voc_root, year=("2007", "2012", "2007"), image_set=("trainval", "test"))
