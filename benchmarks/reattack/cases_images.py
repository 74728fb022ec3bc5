"""Image files (modes, formats, EXIF, truncation, bombs): the cases of category ``images``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .harness import Case, Ctx
from .inputs import _animated, _raw, bomb_png, noise


# ------------------------------------------------------------------------------------------------------ images
def _decode_both(d: Path, ctx: Ctx) -> Any:
    """The pixels through ``decode_image`` (detect's path) and through a COCO data set (training's path)."""
    from lightning_retina.data import decode_image
    from lightning_retina.data.coco import COCODetection

    path: Path = ctx["image"]
    direct = decode_image(path, **ctx.get("kwargs", {}))
    ann = d / "one.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": path.name}], "annotations": [],
                               "categories": [{"id": 1, "name": "x"}]}))  # fmt: skip
    via_dataset = COCODetection(path.parent, ann, **ctx.get("kwargs", {}))[0][0]
    return direct, via_dataset


def image_case(name: str, make: Callable[[Path], Path], expect: str, expected: str,
               check: Callable[[Any], str | None] | None = None, names: tuple[str, ...] = (),
               kwargs: dict | None = None) -> Case:  # fmt: skip
    def prepare(d: Path) -> Ctx:
        return {"image": make(d / "in"), "kwargs": kwargs or {}}

    def full_check(result, ctx, w) -> str | None:
        import torch

        direct, via = result
        if direct.dtype != torch.float32 or direct.dim() != 3 or direct.shape[0] != 3:
            return f"decoded to {direct.dtype} {tuple(direct.shape)}"
        if not torch.equal(direct, via):
            return "the data set and decode_image give different pixels"
        if not (0 <= float(direct.min()) and float(direct.max()) <= 1):
            return f"values {float(direct.min())}..{float(direct.max())} outside 0..1"
        return check(direct) if check else None

    return Case("images", name, expect, expected, prepare, _decode_both, names, full_check)


def _img(mode, size=(48, 64), colour=None, fmt="png", **save):
    def make(d: Path) -> Path:
        from PIL import Image

        d.mkdir(parents=True, exist_ok=True)
        c = colour if colour is not None else {"1": 1, "L": 128, "LA": (128, 255), "P": 3, "RGBA": (10, 20, 30, 40),
                                               "CMYK": (0, 255, 255, 0), "I;16": 32768, "I": 40000, "F": 0.5,
                                               "RGB": (40, 120, 200), "PA": (3, 200)}.get(mode, 0)  # fmt: skip
        path = d / f"x.{fmt}"
        Image.new(mode, size, c).save(path, **save)
        return path
    return make


def _truncated(fmt: str, keep: float):
    def make(d: Path) -> Path:
        path = noise(d / f"full.{fmt}", size=(64, 64))
        data = path.read_bytes()
        path.unlink()
        (d / f"x.{fmt}").write_bytes(data[: int(len(data) * keep)])
        return d / f"x.{fmt}"
    return make


def _exif(orientation: int):
    def make(d: Path) -> Path:
        from PIL import Image

        d.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", (60, 40), (200, 10, 10))
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(d / "x.jpg", exif=exif)
        return d / "x.jpg"
    return make


def _sixteen(value: int, mode="I;16"):
    def make(d: Path) -> Path:
        import numpy as np
        from PIL import Image

        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 30), value, dtype=np.uint16)).save(d / "x.png")  # mode I;16
        return d / "x.png"
    return make


def _near(value: float, channel: int | None = None, tol=0.02):
    def check(t) -> str | None:
        got = float((t if channel is None else t[channel]).mean())
        return None if abs(got - value) <= tol else f"mean {got:.4f}, expected {value:.4f}"
    return check


def _shape(h: int, w: int):
    return lambda t: None if tuple(t.shape[1:]) == (h, w) else f"shape {tuple(t.shape[1:])}, expected {(h, w)}"


def image_cases() -> list[Case]:
    grey3 = lambda t: None if bool((t[0] == t[1]).all() and (t[1] == t[2]).all()) else "channels differ"
    return [
        image_case("RGB PNG", _img("RGB"), "work", "RGB 40/255..", _near(40 / 255, 0)),
        image_case("16-bit PNG 32768", _sixteen(32768), "work", "0.5 (value / 65535)", _near(32768 / 65535, tol=1e-4)),
        image_case("16-bit PNG 65535", _sixteen(65535), "work", "1.0", _near(1.0, tol=1e-4)),
        image_case("16-bit PNG 1", _sixteen(1), "work", "1/65535, not 1/255", _near(1 / 65535, tol=1e-5)),
        image_case("16-bit PNG 300", _sixteen(300), "work", "300/65535 (not clipped to 1)",
                   _near(300 / 65535, tol=1e-5)),
        image_case("CMYK JPEG", _img("CMYK", fmt="jpg"), "either", "red-ish RGB (C=0, M=Y=255), or refused",
                   lambda t: None if t[0].mean() > 0.8 and t[1].mean() < 0.2 else f"RGB means {t.mean((1, 2))}",
                   names=("x.jpg",)),
        image_case("EXIF orientation 6", _exif(6), "work", "turned upright: 60x40 stored -> 40 wide x 60 high",
                   _shape(60, 40)),
        image_case("EXIF orientation 8", _exif(8), "work", "turned: 60 high x 40 wide", _shape(60, 40)),
        image_case("EXIF orientation 3", _exif(3), "work", "rotated 180, shape kept", _shape(40, 60)),
        image_case("EXIF orientation 1", _exif(1), "work", "unchanged", _shape(40, 60)),
        image_case("1-channel L PNG", _img("L"), "work", "three equal channels 128/255",
                   lambda t: grey3(t) or _near(128 / 255)(t)),
        image_case("1-bit PNG", _img("1"), "work", "white", _near(1.0)),
        image_case("LA PNG", _img("LA"), "work", "grey 128/255, alpha dropped", _near(128 / 255)),
        image_case("palette PNG", _img("P"), "work", "3 channels", None),
        image_case("RGBA PNG", _img("RGBA"), "work", "colour channels as stored", _near(10 / 255, 0)),
        image_case("1-channel JPEG", _img("L", fmt="jpg"), "work", "three equal channels", grey3),
        image_case("animated GIF", _animated("gif"), "work", "first frame (red) with a warning",
                   lambda t: None if t[0].mean() > 0.9 and t[1].mean() < 0.1 else "not the first frame"),
        image_case("multi-page TIFF", _animated("tiff"), "work", "first page (red)",
                   lambda t: None if t[0].mean() > 0.9 and t[1].mean() < 0.1 else "not the first page"),
        image_case("TIFF RGB", _img("RGB", fmt="tiff"), "work", "RGB", _near(40 / 255, 0)),
        image_case("TIFF 16-bit", _img("I;16", fmt="tiff"), "work", "0.5", _near(32768 / 65535, tol=1e-3)),
        image_case("TIFF float", _img("F", fmt="tiff"), "refuse", "refused naming the file", names=("x.tiff",)),
        image_case("TIFF int32 out of 16-bit range", _img("I", colour=100000, fmt="tiff"), "refuse",
                   "refused naming the file", names=("x.tiff",)),
        image_case("BMP", _img("RGB", fmt="bmp"), "work", "RGB", _near(40 / 255, 0)),
        image_case("WebP", _img("RGB", fmt="webp", lossless=True), "work", "RGB", _near(40 / 255, 0, tol=0.02)),
        image_case("truncated PNG", _truncated("png", 0.5), "refuse", "refused naming x.png", names=("x.png",)),
        image_case("truncated JPEG", _truncated("jpg", 0.5), "either", "refused naming x.jpg",
                   None, names=("x.jpg",)),
        image_case("PNG header only", _truncated("png", 0.05), "refuse", "refused naming x.png", names=("x.png",)),
        image_case("random bytes", _raw(os.urandom(3000)), "refuse", "refused naming x.png", names=("x.png",)),
        image_case("zero bytes", _raw(b""), "refuse", "refused naming x.png", names=("x.png",)),
        image_case("text named .jpg", _raw(b"hello world\n", "x.jpg"), "refuse", "refused naming x.jpg",
                   names=("x.jpg",)),
        image_case("bomb 10000x10000 PNG", lambda d: bomb_png(d / "x.png", 10000), "refuse",
                   "refused naming the file and the pixel limit, nothing decoded", names=("x.png", "max_pixels")),
        image_case("bomb 20000x20000 PNG", lambda d: bomb_png(d / "x.png", 20000), "refuse",
                   "refused naming the file and the pixel limit (over PIL's own)", names=("x.png", "limit")),
        image_case("bomb 10000x10000 with max_pixels=None", lambda d: bomb_png(d / "x.png", 10000), "either",
                   "PIL's own limit may decode it: within the memory cap or refused",
                   None, names=("x.png",), kwargs={"max_pixels": None}),
        image_case("just over a custom limit", _img("RGB", size=(101, 100)), "refuse",
                   "refused naming max_pixels", names=("x.png", "max_pixels"), kwargs={"max_pixels": 10000}),
        image_case("tall thin 1x60000", _img("L", size=(1, 60000)), "work", "decoded", _shape(60000, 1)),
        image_case("1x1 image", _img("RGB", size=(1, 1)), "work", "decoded", _shape(1, 1)),
    ]
