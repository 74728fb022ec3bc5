"""COCO annotation files: the cases of category ``coco``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .harness import Case, Ctx
from .inputs import coco_base, noise


def write_coco(d: Path, data: Any, raw: str | bytes | None = None) -> Ctx:
    for name in ("a.png", "b.png"):
        noise(d / "img" / name, seed=len(name))
    ann = d / "instances.json"
    ann.write_bytes(raw if isinstance(raw, bytes) else (raw if raw is not None else json.dumps(data)).encode())
    return {"img": d / "img", "ann": ann}


def coco_case(name: str, mutate: Callable[[dict], Any], expect="refuse", names=(), check=None, expected="",
              in_file: bool = True) -> Case:
    """A COCO file changed by ``mutate`` (which may return the file's text); errors must name the file (unless
    ``in_file`` is false: an image error names the image) and ``names``."""
    def prepare(d: Path) -> Ctx:
        data = coco_base()
        out = mutate(data)
        raw = out if isinstance(out, (str, bytes)) else None
        return write_coco(d, data, raw)

    return Case("coco", name, expect, expected or f"refused naming {' and '.join(names) or 'the file'}", prepare,
                act=read_coco, names=(("instances.json",) if in_file else ()) + tuple(names), check=check)  # fmt: skip


def read_coco(d: Path, ctx: Ctx) -> Any:
    from lightning_retina.data.coco import COCODetection

    ds = COCODetection(ctx["img"], ctx["ann"])
    return [ds[i][1] for i in range(len(ds))], ds


# ================================================================================================ the cases
def _no_crowd(result, ctx, w) -> str | None:
    targets, _ = result
    return None if not bool(targets[0]["iscrowd"].any()) else "iscrowd '0' read as crowd"


def _labels_ok(result, ctx, w) -> str | None:
    targets, _ = result
    got = targets[0]["labels"].tolist()
    return None if got == [0, 1] else f"labels {got}, expected [0, 1]"


def _id_of(value):
    def mutate(data):
        data["images"][0]["id"] = value
        for ann in data["annotations"][:2]:
            ann["image_id"] = value
    return mutate


def _set(path: str, value):
    """A mutation setting ``data[a][i][k] = value`` for ``path`` "a.i.k"; ``...`` deletes the key."""
    def mutate(data):
        part, index, key = path.split(".")
        entry = data[part][int(index)]
        if value is ...:
            entry.pop(key, None)
        else:
            entry[key] = value
    return mutate


def coco_cases() -> list[Case]:
    def dup_image(data):
        data["images"][1]["id"] = 1

    def dup_image_same_file(data):
        data["images"][1] = dict(data["images"][0])

    def orphan(data):
        data["annotations"][2]["image_id"] = 99

    def orphan_cat(data):
        data["annotations"][2]["category_id"] = 7

    def dup_cat(data):
        data["categories"][1]["id"] = 1

    def dup_cat_same_name(data):
        data["categories"].append({"id": 1, "name": "cat"})

    def dup_ann(data):
        data["annotations"][1]["id"] = 1

    def mixed_ids(data):
        data["images"][0]["id"] = "1"
        for ann in data["annotations"][:2]:
            ann["image_id"] = "1"

    def all_string(data):
        for img in data["images"]:
            img["id"] = str(img["id"])
        for ann in data["annotations"]:
            ann["image_id"] = str(ann["image_id"])

    def string_cat_ids(data):
        for c in data["categories"]:
            c["id"] = str(c["id"])
        for a in data["annotations"]:
            a["category_id"] = str(a["category_id"])

    def float_labels(data):
        data["annotations"][0]["category_id"] = 1.0
        data["annotations"][1]["category_id"] = 3.0

    def frac_label(data):
        data["annotations"][0]["category_id"] = 1.5

    def bool_id(data):
        data["annotations"][0]["id"] = True

    def no_images(data):
        del data["images"]

    def images_dict(data):
        data["images"] = {"1": data["images"][0]}

    def categories_missing(data):
        del data["categories"]

    def no_annotations(data):
        del data["annotations"]

    def ann_not_dict(data):
        data["annotations"][0] = [1, 2, 3]

    def nested(data):
        return "[" * 100000 + "]" * 100000

    def escape(data):
        data["images"][0]["file_name"] = "../" * 40 + "etc/passwd"

    cases = [
        coco_case("valid file", lambda data: None, "work", expected="3 boxes, labels from category ids, crowd kept",
                  check=lambda r, c, w: None if [len(t["boxes"]) for t in r[0]] == [2, 1]
                  and r[0][0]["labels"].tolist() == [0, 1] and r[0][1]["iscrowd"].tolist() == [True] else "wrong"),
        coco_case("duplicate image ids", dup_image, names=("1",)),
        coco_case("duplicate image ids same file", dup_image_same_file, names=("1",)),
        coco_case("orphan annotation", orphan, names=("99",)),
        coco_case("annotation of an unlisted category", orphan_cat, names=("7",)),
        coco_case("duplicate category ids", dup_cat, names=("1",)),
        coco_case("duplicate category id and name", dup_cat_same_name, names=("1",)),
        coco_case("duplicate annotation ids", dup_ann, names=("1",)),
        coco_case("missing file_name", _set("images.0.file_name", ...), names=("file_name",)),
        coco_case("file_name null", _set("images.0.file_name", None), names=("file_name",)),
        coco_case("file_name number", _set("images.0.file_name", 7), names=("file_name",)),
        coco_case("file_name empty", _set("images.0.file_name", ""), names=("file_name",)),
        coco_case("file_name escapes the folder", escape, "either", names=("etc/passwd",), in_file=False,
                  expected="refused naming the path (not an image), never decoded as one",
                  check=lambda r, c, w: "read /etc/passwd as an image"),
        coco_case("image file missing", _set("images.0.file_name", "missing.png"), names=("missing.png",)),
        coco_case("missing category name", _set("categories.0.name", ...), names=("name",)),
        coco_case("category name null", _set("categories.0.name", None), names=("name",)),
        coco_case("category name number", _set("categories.0.name", 5), names=("name",)),
        coco_case("width string 64", _set("images.0.width", "64"), names=("width", "64")),
        coco_case("width null", _set("images.0.width", None), names=("width", "None")),
        coco_case("width zero", _set("images.0.width", 0), names=("width",)),
        coco_case("width negative", _set("images.0.width", -64), names=("width", "-64")),
        coco_case("width float", _set("images.0.width", 64.5), names=("width", "64.5")),
        coco_case("height string", _set("images.0.height", "48"), names=("height", "48")),
        coco_case("height true", _set("images.0.height", True), names=("height",)),
        coco_case("mixed str and int image ids", mixed_ids, names=("id",)),
        coco_case("all-string image ids", all_string, names=("id",)),
        coco_case("string category ids", string_cat_ids, names=("id",)),
        coco_case("bool annotation id", bool_id, names=("id",)),
        coco_case("image id float", _id_of(1.5), names=("1.5",)),
        coco_case("image id null", _id_of(None), names=("None",)),
        coco_case("iscrowd string 0", _set("annotations.0.iscrowd", "0"), "either", names=("iscrowd",),
                  check=_no_crowd, expected="refused naming iscrowd, or read as not crowd"),
        coco_case("iscrowd string 1", _set("annotations.0.iscrowd", "1"), names=("iscrowd",)),
        coco_case("iscrowd 2", _set("annotations.0.iscrowd", 2), names=("iscrowd",)),
        coco_case("iscrowd null", _set("annotations.0.iscrowd", None), "either", names=("iscrowd",),
                  check=_no_crowd, expected="refused naming iscrowd, or read as not crowd"),
        coco_case("iscrowd true", _set("annotations.0.iscrowd", True), "work",
                  check=lambda r, c, w: None if r[0][0]["iscrowd"].tolist()[0] else "true not read as crowd",
                  expected="read as crowd"),
        coco_case("float labels 1.0 and 3.0", float_labels, "either", names=("category_id",), check=_labels_ok,
                  expected="refused naming category_id, or labels [0, 1]"),
        coco_case("fractional label 1.5", frac_label, names=("1.5",)),
        coco_case("bbox of strings", _set("annotations.0.bbox", ["a", "b", "c", "d"]), names=("bbox",)),
        coco_case("bbox three numbers", _set("annotations.0.bbox", [1, 2, 3]), names=("bbox",)),
        coco_case("bbox NaN", _set("annotations.0.bbox", [float("nan"), 1, 2, 3]), names=("bbox",)),
        coco_case("bbox negative width", _set("annotations.0.bbox", [10, 10, -5, 5]), names=("annotation id 1",)),
        coco_case("bbox far outside image", _set("annotations.0.bbox", [500, 500, 10, 10]), names=("annotation id 1",)),
        coco_case("bbox missing", _set("annotations.0.bbox", ...), names=("bbox",)),
        coco_case("area string", _set("annotations.0.area", "big"), names=("area",)),
        coco_case("area infinite", _set("annotations.0.area", float("inf")), names=("area",)),
        coco_case("no images key", no_images, names=("images",)),
        coco_case("images is a dict", images_dict, names=("images",)),
        coco_case("no categories key", categories_missing, names=("categories",)),
        coco_case("no annotations key", no_annotations, "either", names=("annotations",),
                  check=lambda r, c, w: None if all(len(t["boxes"]) == 0 for t in r[0]) else "boxes from nowhere",
                  expected="read as images without boxes, or refused naming annotations"),
        coco_case("annotation not an object", ann_not_dict, names=("annotation",)),
        coco_case("top-level list", lambda data: "[1, 2, 3]"),
        coco_case("empty file", lambda data: ""),
        coco_case("truncated JSON", lambda data: json.dumps(data)[:150]),
        coco_case("deeply nested JSON", nested),
        coco_case("not UTF-8", lambda data: b"\xff\xfe{\x00"),
        coco_case("size mismatch with the image", lambda data: data["images"][0].update(width=128, height=96),
                  "work", expected="pixels trusted, a warning naming a.png",
                  check=lambda r, c, w: None if any("a.png" in m for m in w) else "no warning naming a.png"),
    ]
    return cases
