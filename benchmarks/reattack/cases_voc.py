"""Pascal VOC folders: the cases of category ``voc``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .harness import Case, Ctx
from .inputs import VOC_OK, noise


def write_voc(d: Path, xml: str | None = None, stems=("000001", "000002"), listed=None, image=None) -> Ctx:
    base = d / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for k, stem in enumerate(stems):
        if image is not None and k == 0:
            image(base / "JPEGImages" / f"{stem}.jpg")
        else:
            noise(base / "JPEGImages" / f"{stem}.jpg", seed=k)
        text = xml if (xml is not None and k == 0) else VOC_OK
        (base / "Annotations" / f"{stem}.xml").write_text(text.replace("{stem}", stem))
    (base / "ImageSets" / "Main" / "train.txt").write_text("".join(f"{s}\n" for s in (listed or stems)))
    return {"root": d, "base": base, "xml": base / "Annotations" / f"{stems[0]}.xml"}


def read_voc(d: Path, ctx: Ctx) -> Any:
    from lightning_retina.data.voc import VOCDetection

    ds = VOCDetection(ctx["root"], "2007", "train", class_names=("cat", "dog"), keep_difficult=True)
    return [ds[i][1] for i in range(len(ds))], ds


def voc_case(name: str, xml: str, expect="refuse", names=("000001.xml",), check=None, expected="") -> Case:
    return Case("voc", name, expect, expected or f"refused naming {' and '.join(names)}",
                lambda d: write_voc(d, xml), read_voc, names, check)  # fmt: skip


def _voc_then(change: Callable[[Path], Any]) -> Callable[[Path], Ctx]:
    """A valid VOC folder, then ``change(year folder)``."""
    def prepare(d: Path) -> Ctx:
        ctx = write_voc(d)
        change(ctx["base"])
        return ctx
    return prepare


def voc_obj(box: str, name: str = "cat", extra: str = "") -> str:
    return VOC_OK.replace(
        "<object><name>cat</name><difficult>0</difficult><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>30</xmax>"
        "<ymax>20</ymax></bndbox></object>",
        f"<object><name>{name}</name>{extra}<bndbox>{box}</bndbox></object>",
    )


def bbox(x1, y1, x2, y2) -> str:
    return f"<xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax>"


def voc_cases() -> list[Case]:
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
            '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><annotation><filename>&lol3;</filename></annotation>')
    xxe = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY s SYSTEM "file:///etc/passwd">]>'
           '<annotation><filename>&s;</filename></annotation>')

    def boxes(n):
        return lambda r, c, w: None if len(r[0][0]["boxes"]) == n else f"{len(r[0][0]['boxes'])} boxes, expected {n}"

    cases = [
        voc_case("valid", VOC_OK, "work", (), boxes(2), "2 boxes"),
        voc_case("malformed XML", "<annotation><size>", names=("000001.xml",)),
        voc_case("not XML", "hello", names=("000001.xml",)),
        voc_case("empty file", "", names=("000001.xml",)),
        voc_case("entity bomb", bomb, names=("000001.xml",)),
        voc_case("external entity", xxe, names=("000001.xml",)),
        voc_case("unknown class", voc_obj(bbox(2, 3, 30, 20), "zebra"), names=("000001.xml", "zebra")),
        voc_case("class name empty", voc_obj(bbox(2, 3, 30, 20), ""), names=("000001.xml",)),
        voc_case("no name element", VOC_OK.replace("<name>cat</name>", ""), names=("000001.xml", "name")),
        voc_case("xmin == xmax: one pixel wide", voc_obj(bbox(5, 3, 5, 20)), "work", (),
                 lambda r, c, w: None if r[0][0]["boxes"][0].tolist()[0:3:2] == [4.0, 5.0] else "not 1 px wide",
                 "kept, 1 px wide (VOC pixel indices are inclusive): x 4..5"),
        voc_case("degenerate box: zero width", voc_obj(bbox(5, 3, 4, 20)), "either", ("000001.xml",), boxes(1),
                 "the zero-width box (xmax = xmin - 1) dropped (counted) or refused naming the file"),
        voc_case("degenerate box: zero height", voc_obj(bbox(5, 7, 9, 6)), "either", ("000001.xml",), boxes(1),
                 "the zero-height box dropped or refused naming the file"),
        voc_case("inverted box", voc_obj(bbox(30, 20, 2, 3)), names=("000001.xml",)),
        voc_case("negative coordinates", voc_obj(bbox(-30, -20, -2, -3)), names=("000001.xml",)),
        voc_case("box far outside", voc_obj(bbox(200, 200, 300, 300)), names=("000001.xml",)),
        voc_case("NaN coordinate", voc_obj(bbox("nan", 3, 30, 20)), names=("000001.xml", "xmin")),
        voc_case("inf coordinate", voc_obj(bbox(2, 3, "inf", 20)), names=("000001.xml", "xmax")),
        voc_case("text coordinate", voc_obj(bbox("left", 3, 30, 20)), names=("000001.xml", "xmin")),
        voc_case("missing xmax", voc_obj("<xmin>2</xmin><ymin>3</ymin><ymax>20</ymax>"), names=("000001.xml", "xmax")),
        voc_case("no bndbox", VOC_OK.replace("<bndbox><xmin>2</xmin><ymin>3</ymin><xmax>30</xmax><ymax>20</ymax>"
                 "</bndbox>", ""), names=("000001.xml", "bndbox")),
        voc_case("difficult yes", voc_obj(bbox(2, 3, 30, 20), extra="<difficult>yes</difficult>"),
                 names=("000001.xml", "difficult")),
        voc_case("difficult 2", voc_obj(bbox(2, 3, 30, 20), extra="<difficult>2</difficult>"),
                 names=("000001.xml", "difficult")),
        voc_case("size text", VOC_OK.replace("<width>64</width>", "<width>wide</width>"),
                 names=("000001.xml", "width")),
        voc_case("size negative", VOC_OK.replace("<width>64</width>", "<width>-64</width>"),
                 names=("000001.xml", "width")),
        voc_case("size mismatch with image", VOC_OK.replace("<width>64</width>", "<width>640</width>"), "work", (),
                 lambda r, c, w: None if any("000001" in m for m in w) else "no warning naming the image",
                 "pixels trusted, a warning naming the image"),
        voc_case("fractional box", voc_obj(bbox(2.5, 3.25, 30.5, 20.75)), "work", (), boxes(2), "2 boxes"),
        Case("voc", "image set lists a missing stem", "refuse", "refused naming 000003",
             lambda d: write_voc(d, listed=("000001", "000002", "000003")), read_voc, ("000003",)),
        Case("voc", "image set missing", "refuse", "refused naming train.txt",
             _voc_then(lambda base: (base / "ImageSets/Main/train.txt").unlink()), read_voc, ("train.txt",)),
        Case("voc", "image missing", "refuse", "refused naming 000001.jpg",
             _voc_then(lambda base: (base / "JPEGImages/000001.jpg").unlink()), read_voc, ("000001.jpg",)),
        Case("voc", "image set with blank and CRLF lines", "work", "2 images",
             _voc_then(lambda base: (base / "ImageSets/Main/train.txt").write_bytes(b"000001\r\n\r\n000002\r\n")),
             read_voc, (), lambda r, c, w: None if len(r[0]) == 2 else f"{len(r[0])} images"),
    ]
    return cases
