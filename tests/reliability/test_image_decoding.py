"""``decode_image``: every file the tests write is checked against an independent reference (the array written,
or PIL's own conversion), and the data sets go through the same decoder."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from lightning_retina.data import COCODetection, ImageWarning, VOCDetection, decode_image
from tests.data_fixtures import VOCImage, VOCObject, voc_xml, write_voc

RNG = np.random.default_rng(0)


def _expected(array: np.ndarray, scale: float = 255.0) -> torch.Tensor:
    """``float32[3, H, W]`` from an ``[H, W]`` or ``[H, W, 3]`` array of integers in ``0..scale``."""
    rgb = np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array
    return torch.from_numpy(rgb.astype(np.float64) / scale).permute(2, 0, 1).float()


def test_sixteen_bit_png_is_scaled_by_65535(tmp_path: Path) -> None:
    values = np.array([[0, 1, 1000, 32768], [40000, 65534, 65535, 257]], dtype=np.uint16)
    path = tmp_path / "depth.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"  # what PIL makes of it: the case that used to clip to 0 / 1
    image = decode_image(path)
    assert image.shape == (3, 2, 4) and image.dtype == torch.float32
    torch.testing.assert_close(image, _expected(values, 65535.0), rtol=0, atol=1e-7)


def test_thirty_two_bit_integers_beyond_sixteen_bits_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "counts.tif"
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(path)
    with pytest.raises(ValueError, match=f"{path}.*outside the 16-bit range"):
        decode_image(path)


def test_float_image_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.zeros((2, 2), dtype=np.float32)).save(path)
    with pytest.raises(ValueError, match=f"{path}.*floating-point"):
        decode_image(path)


@pytest.mark.parametrize("suffix", ["png", "bmp", "tif"])
def test_lossless_rgb_files_decode_to_the_pixels_written(tmp_path: Path, suffix: str) -> None:
    pixels = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = tmp_path / f"image.{suffix}"
    Image.fromarray(pixels).save(path)
    torch.testing.assert_close(decode_image(path), _expected(pixels), rtol=0, atol=0)


def test_grayscale_is_repeated_to_three_channels(tmp_path: Path) -> None:
    gray = RNG.integers(0, 256, size=(4, 6), dtype=np.uint8)
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    torch.testing.assert_close(decode_image(path), _expected(gray), rtol=0, atol=0)


@pytest.mark.parametrize(("mode", "suffix"), [("LA", "png"), ("P", "png"), ("RGBA", "png"), ("1", "png"),
                                              ("CMYK", "jpg"), ("L", "jpg")])  # fmt: skip
def test_other_modes_become_rgb_as_pil_converts_them(tmp_path: Path, mode: str, suffix: str) -> None:
    pixels = RNG.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    path = tmp_path / f"image.{suffix}"
    Image.fromarray(pixels).convert(mode).save(path)
    with Image.open(path) as img:
        assert img.mode == mode
        reference = np.asarray(img.convert("RGB"))
    image = decode_image(path)
    assert image.shape == (3, 6, 5)
    torch.testing.assert_close(image, _expected(reference), rtol=0, atol=0)


@pytest.mark.parametrize("suffix", ["gif", "tif"])
def test_several_frames_use_the_first_with_a_warning(tmp_path: Path, suffix: str) -> None:
    red, blue = Image.new("RGB", (8, 6), (255, 0, 0)), Image.new("RGB", (8, 6), (0, 0, 255))
    path = tmp_path / f"animated.{suffix}"
    red.save(path, save_all=True, append_images=[blue])
    with pytest.warns(ImageWarning, match=f"{path} holds 2 frames; using the first"):
        image = decode_image(path)
    torch.testing.assert_close(image, _expected(np.asarray(red)), rtol=0, atol=0)
    with warnings.catch_warnings():  # once per file: no second warning
        warnings.simplefilter("error", ImageWarning)
        decode_image(path)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    raw = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 high: left half red, right half blue
    raw[:, :20, 0], raw[:, 20:, 2] = 255, 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(raw).save(path, exif=exif, quality=100, subsampling=0)
    image = decode_image(path)
    assert image.shape == (3, 40, 20)  # displayed upright: 20 wide, 40 high, red on top
    away_from_the_edge = np.r_[0:16, 24:40]  # JPEG rings a few rows around the colour edge
    expected = _expected(np.rot90(raw, k=-1))[:, away_from_the_edge]
    torch.testing.assert_close(image[:, away_from_the_edge], expected, rtol=0, atol=0.05)


def _bomb_png(path: Path, side: int) -> Path:
    """A ``side`` × ``side`` 1-bit PNG: a few KB on disk, ``3 * side**2`` bytes as RGB."""
    Image.new("1", (side, side)).save(path, optimize=True)
    return path


def test_pixel_limit_refuses_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _bomb_png(tmp_path / "bomb.png", 10_000)
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    with pytest.raises(ValueError, match=f"{path}: 10000x10000 = 100000000 pixels is more than the limit of 50000000"):
        decode_image(path)


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.new("RGB", (20, 10)).save(path)
    with pytest.raises(ValueError, match="200 pixels is more than the limit of 199"):
        decode_image(path, max_pixels=199)
    assert decode_image(path, max_pixels=200).shape == (3, 10, 20)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_files_are_refused_naming_them(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"not an image" * 10, "empty": b""}[damage])
    with pytest.raises(ValueError, match=f"cannot decode image {path}"):
        decode_image(path)


def test_folder_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"cannot decode image {tmp_path}: not a file"):
        decode_image(tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope.jpg")):
        decode_image(tmp_path / "nope.jpg")


def test_datasets_decode_through_the_same_decoder(tmp_path: Path) -> None:
    values = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    (tmp_path / "images").mkdir()
    Image.fromarray(values).save(tmp_path / "images" / "depth.png")
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "depth.png", "width": 4, "height": 3}],
                               "annotations": [], "categories": [{"id": 1, "name": "thing"}]}))  # fmt: skip
    image, _ = COCODetection(tmp_path / "images", ann)[0]
    torch.testing.assert_close(image, _expected(values, 65535.0), rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="more than the limit of 11"):
        COCODetection(tmp_path / "images", ann, max_pixels=11)[0]


def test_size_mismatch_trusts_the_pixels_and_warns_once_naming_the_file(tmp_path: Path) -> None:
    stem = "000001"
    base = write_voc(tmp_path, "2007", [VOCImage(stem, 30, 20, [VOCObject("dog", (2, 3, 25, 18))])], {"val": [stem]})
    xml = base / "Annotations" / f"{stem}.xml"
    xml.write_text(voc_xml(VOCImage(stem, 40, 30, [VOCObject("dog", (2, 3, 25, 18))])))  # the size is wrong
    dataset = VOCDetection(tmp_path, "2007", "val")
    image_file = base / "JPEGImages" / f"{stem}.jpg"
    with pytest.warns(ImageWarning, match=f"{image_file}: the annotation gives the size 40x30, the image is 30x20"):
        image, target = dataset[0]
    assert image.shape == (3, 20, 30)
    torch.testing.assert_close(target["boxes"], torch.tensor([[1.0, 2.0, 25.0, 18.0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImageWarning)
        dataset[0]  # second epoch: no second warning


def test_exif_rotated_image_with_the_raw_size_in_its_annotation_warns(tmp_path: Path) -> None:
    stem = "000002"
    base = write_voc(tmp_path, "2007", [VOCImage(stem, 40, 20)], {"val": [stem]})
    exif = Image.Exif()
    exif[0x0112] = 6
    image_file = base / "JPEGImages" / f"{stem}.jpg"
    Image.new("RGB", (40, 20)).save(image_file, exif=exif)
    with pytest.warns(ImageWarning, match="gives the size 40x20, the image is 20x40 \\(after its EXIF orientation\\)"):
        image, _ = VOCDetection(tmp_path, "2007", "val")[0]
    assert image.shape == (3, 40, 20)


def test_datamodule_max_pixels_reaches_the_readers(tmp_path):
    """The DataModule's pixel limit is the one its readers apply: a 64x64 shapes image is refused at 4095 pixels."""
    from lightning_retina.data import DetectionDataModule

    kwargs = dict(shapes_num_train=2, shapes_num_val=1, shapes_image_size=64, num_workers=0, train_flip=False)
    root = str(tmp_path / "shapes")
    strict = DetectionDataModule("shapes", root, max_pixels=64 * 64 - 1, **kwargs)
    strict.prepare_data()
    strict.setup("fit")
    with pytest.raises(ValueError, match=r"4096 pixels is more than the limit of 4095"):
        strict.datasets["train"][0]
    relaxed = DetectionDataModule("shapes", root, max_pixels=64 * 64, **kwargs)
    relaxed.setup("fit")
    assert relaxed.datasets["train"][0][0].shape == (3, 64, 64)
