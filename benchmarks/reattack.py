"""Re-attack of issue 20: generate hostile inputs for every row of the issue and classify what the package does.

    PYTHONPATH=$PWD python benchmarks/reattack.py --out /tmp/reattack [--only coco,voc] [--timeout 120]

Each case writes its inputs into its own folder under ``--out`` and states what it expects: a *refusal* (an error
whose message names the file and the key/value given in the case), a *result* (checked by the case), or *either*.
API cases run in a forked child process (the parent imported torch once, so a fork is cheap) with an address-space
limit and a timeout; CLI cases run ``python -m lightning_retina.cli`` as a subprocess. Outcomes:

- ``ok``: worked as expected, or refused with an error naming what the case says it must name;
- ``unclear_error``: an exception or a CLI error that does not name the file / key / value, or a raw traceback;
- ``silent_wrong``: ran, but the result is wrong (including "accepted what must be refused");
- ``data_loss``: a pre-existing user file changed or vanished (SHA-256 before and after);
- ``hang``: ran past the timeout;
- ``resource``: peak memory more than ``--mem-cap-gib`` above the start (or the address-space limit was hit).

Writes ``OUT/reattack.json`` (every case) and ``OUT/reattack.md`` (tables per category and totals).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("ok", "unclear_error", "silent_wrong", "data_loss", "hang", "resource")
GIB = 1 << 30
REPO = Path(__file__).resolve().parents[1]

Ctx = dict[str, Any]


@dataclass
class Case:
    """One hostile input.

    Args:
        category: the issue-20 area (``data_loss``, ``coco``, ``voc``, ``images``, ``cli``, ``checkpoints``, ...).
        name: short name, unique in its category.
        expect: ``"refuse"`` (an error naming ``names``), ``"work"`` (``check`` returns no problem) or ``"either"``.
        expected: the expected result in words (reported).
        prepare: ``prepare(folder) -> ctx`` writes the inputs; ``ctx["protect"]`` lists files that must survive
            unchanged, ``ctx["argv"]`` is the CLI command line for CLI cases.
        act: ``act(folder, ctx) -> result`` for API cases (``None`` for CLI cases).
        names: substrings the error message must contain (``{d}`` is replaced by the case folder).
        check: ``check(result, ctx, warnings) -> problem or None`` (CLI: ``result`` is ``(rc, stdout, stderr)``).
    """

    category: str
    name: str
    expect: str
    expected: str
    prepare: Callable[[Path], Ctx]
    act: Callable[[Path, Ctx], Any] | None = None
    names: tuple[str, ...] = ()
    check: Callable[[Any, Ctx, list[str]], str | None] | None = None


@dataclass
class Result:
    category: str
    name: str
    expected: str
    outcome: str
    detail: str
    seconds: float
    peak_gib: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# ============================================================================================== file helpers
def sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def snapshot(paths: list[Path]) -> dict[str, str | None]:
    return {str(p): sha(p) for p in paths}


def png(path: Path, size=(48, 64), mode="RGB", colour: Any = (40, 120, 200), **save) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, **save)
    return path


def noise(path: Path, size=(64, 48), seed=0) -> Path:
    """Random RGB pixels, ``size`` = (width, height): 64 x 48 like the annotations of the COCO / VOC cases."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def bomb_png(path: Path, side: int) -> Path:
    """A ``side`` x ``side`` 1-bit black PNG written without holding its pixels: a few hundred KB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    row = b"\x00" * (1 + (side + 7) // 8)
    comp, parts = zlib.compressobj(9), []
    block = row * 256
    for _ in range(side // 256):
        parts.append(comp.compress(block))
    parts.append(comp.compress(row * (side % 256)))
    parts.append(comp.flush())
    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])  # 1-bit grayscale
    path.parent.mkdir(parents=True, exist_ok=True)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


# -------------------------------------------------------------------------------------------------- COCO data
def coco_base() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                   {"id": 2, "file_name": "b.png", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 20, 10], "iscrowd": 0, "area": 200},
                        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [30, 5, 10, 30], "iscrowd": 0, "area": 300},
                        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [1, 1, 5, 5], "iscrowd": 1, "area": 25}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 3, "name": "dog"}],
    }  # fmt: skip


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


# --------------------------------------------------------------------------------------------------- VOC data
VOC_OK = (
    "<annotation><filename>{stem}.jpg</filename><size><width>64</width><height>48</height><depth>3</depth></size>\n"
    "<object><name>cat</name><difficult>0</difficult><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>30</xmax>"
    "<ymax>20</ymax></bndbox></object>\n"
    "<object><name>dog</name><difficult>0</difficult><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>40</xmax>"
    "<ymax>40</ymax></bndbox></object>\n</annotation>"
)


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


# ================================================================================================ the checkpoint
def make_checkpoint(path: Path) -> None:
    """A tiny ResNet-18 RetinaNet checkpoint (3 classes, 64 px), written by ``Trainer.save_checkpoint``."""
    import lightning as L
    import torch

    from lightning_retina import RetinaNetModule

    torch.manual_seed(0)
    module = RetinaNetModule(num_classes=3, class_names=["cat", "dog", "bird"], backbone="resnet18", fpn_channels=32,
                             min_size=64, max_size=64, anchor_sizes=(8, 16, 32, 64, 128), score_thresh=0.0,
                             detections_per_img=5)  # fmt: skip
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=0)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)


CKPT: Path = Path()  # set in main()


def edited_ckpt(d: Path, **changes) -> Path:
    import torch

    checkpoint = torch.load(CKPT, weights_only=True)
    checkpoint["hyper_parameters"].update(changes)
    torch.save(checkpoint, d / "edited.ckpt")
    return d / "edited.ckpt"


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# =============================================================================================== child runner
def _vm_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


_AUDIT: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and args and str(args[0]) == "/etc/passwd":
        _AUDIT.append(f"opened {args[0]}")
    elif event in ("socket.connect", "socket.getaddrinfo", "urllib.Request"):
        _AUDIT.append(f"network: {event} {str(args)[:80]}")


def _child(case: Case, d: Path, ctx: Ctx, mem_cap: int, conn: int) -> None:
    """Runs in the forked child: limits, act, check; writes one JSON line to ``conn``."""
    os.setsid()
    soft = _vm_kib("VmSize") * 1024 + mem_cap + GIB  # address space: what is mapped now + the cap + slack
    resource.setrlimit(resource.RLIMIT_AS, (soft, soft))
    sys.addaudithook(_audit)
    report: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = case.act(d, ctx)
            report["raised"] = None
        except BaseException as err:  # noqa: BLE001 - everything is an outcome here
            result = None
            report["raised"] = type(err).__name__
            report["message"] = str(err)
            report["traceback"] = traceback.format_exc()[-1500:]
        messages = [str(w.message) for w in caught]
    report["warnings"] = messages[:20]
    report["audit"] = _AUDIT[:5]
    if report["raised"] is None and case.check is not None:
        try:
            report["problem"] = case.check(result, ctx, messages)
        except BaseException as err:  # noqa: BLE001
            report["problem"] = f"check failed: {type(err).__name__}: {err}"
    os.write(conn, json.dumps(report, default=str).encode())
    os.close(conn)
    os._exit(0)


def _wait(pid: int, timeout: float) -> tuple[int | None, float]:
    """``(status or None on timeout, peak RSS in bytes)`` of the child ``pid``."""
    deadline = time.monotonic() + timeout
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage.ru_maxrss * 1024
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, _, usage = os.wait4(pid, 0)
            return None, usage.ru_maxrss * 1024
        time.sleep(0.02)


def run_api(case: Case, d: Path, ctx: Ctx, timeout: float, mem_cap: int) -> tuple[dict | None, float, float]:
    """Fork, run the case; ``(report or None on hang/crash, peak GiB above the parent, seconds)``."""
    base = _vm_kib("VmRSS") * 1024
    read, write = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            _child(case, d, ctx, mem_cap, write)
        finally:
            os._exit(1)
    os.close(write)
    os.set_blocking(read, False)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    status = None
    while True:
        try:
            data = os.read(read, 1 << 16)
            if data:
                chunks.append(data)
        except BlockingIOError:
            pass
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            peak = usage.ru_maxrss * 1024
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            _, _, usage = os.wait4(pid, 0)
            os.close(read)
            return {"hang": True}, (usage.ru_maxrss * 1024 - base) / GIB, time.monotonic() - start
        time.sleep(0.01)
    os.set_blocking(read, True)
    while data := os.read(read, 1 << 16):
        chunks.append(data)
    os.close(read)
    seconds = time.monotonic() - start
    try:
        report = json.loads(b"".join(chunks))
    except ValueError:
        report = {"crashed": f"child exited with status {status} and no report"}
    return report, max(0.0, (peak - base) / GIB), seconds


def run_cli(argv: list[str], d: Path, timeout: float, mem_cap: int) -> tuple[dict, float, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    start = time.monotonic()
    with open(d / "stdout.txt", "wb") as out, open(d / "stderr.txt", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "lightning_retina.cli", *argv], cwd=d, env=env, stdout=out,
                                stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        status, peak = _wait(proc.pid, timeout)
        proc.returncode = 0  # reaped by _wait
    seconds = time.monotonic() - start
    stdout = (d / "stdout.txt").read_text(errors="replace")
    stderr = (d / "stderr.txt").read_text(errors="replace")
    if status is None:
        return {"hang": True}, peak / GIB, seconds
    rc = os.waitstatus_to_exitcode(status)
    return {"rc": rc, "stdout": stdout[-3000:], "stderr": stderr[-3000:]}, peak / GIB, seconds


# ================================================================================================ classification
MEMORY_ERRORS = ("MemoryError", "can't allocate memory", "bad_alloc", "Cannot allocate memory", "out of memory")


def classify(case: Case, d: Path, ctx: Ctx, report: dict, peak_gib: float, mem_cap: int,
             before: dict[str, str | None]) -> tuple[str, str]:  # fmt: skip
    """``(outcome, detail)`` of one run (see the module docstring)."""
    after = snapshot([Path(p) for p in before])
    lost = [p for p, h in before.items() if after[p] != h]
    if lost:
        return "data_loss", "changed or removed: " + ", ".join(Path(p).name for p in lost[:5])
    if report.get("hang"):
        return "hang", "ran past the timeout"
    message = report.get("message") or ""
    raised = f"{report.get('raised')}: {message}"
    if peak_gib > mem_cap / GIB or any(m in raised for m in MEMORY_ERRORS):
        return "resource", f"peak {peak_gib:.2f} GiB above the start; {message[:120]}"
    if "crashed" in report:
        return "unclear_error", report["crashed"]
    names = tuple(n.replace("{d}", str(d)) for n in case.names)
    if "rc" in report:  # a CLI run
        rc, stderr = report["rc"], report["stderr"]
        problem = case.check((rc, report["stdout"], stderr), ctx, []) if case.check else None
        if rc != 0 and problem and case.expect != "work":
            return "silent_wrong", f"rc {rc}, but {problem}"
        if rc != 0:
            if case.expect == "work":
                return "unclear_error", f"rc {rc}: {_last(stderr)}"
            if "Traceback" in stderr:
                return "unclear_error", f"traceback: {_last(stderr)}"
            missing = [n for n in names if n not in stderr]
            return ("unclear_error", f"message lacks {missing}: {_last(stderr)}") if missing else ("ok", _last(stderr))
        if case.expect == "refuse":
            return "silent_wrong", "accepted (rc 0); expected a refusal"
        return ("silent_wrong", problem) if problem else ("ok", "rc 0")
    if report.get("audit") and case.category == "checkpoints":  # a checkpoint's hparams must not reach files/net
        return "silent_wrong", "; ".join(report["audit"])
    if report["raised"] is not None:
        missing = [n for n in names if n not in message]
        text = f"{report['raised']}: {message[:200]}"
        if case.expect == "work" or missing:
            return "unclear_error", (f"lacks {missing}: " if missing else "") + text
        return "ok", text
    if case.expect == "refuse":
        return "silent_wrong", "accepted; expected a refusal"
    problem = report.get("problem")
    return ("silent_wrong", problem) if problem else ("ok", "worked" + _warned(report))


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _warned(report: dict) -> str:
    return f" (warned: {report['warnings'][0][:120]})" if report.get("warnings") else ""


def run_case(case: Case, root: Path, timeout: float, mem_cap: int) -> Result:
    d = root / case.category / case.name.replace(" ", "_").replace("/", "_")
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    try:
        ctx = case.prepare(d)
    except Exception as err:  # noqa: BLE001 - a broken case is reported, not fatal
        return Result(case.category, case.name, case.expected, "harness_error", f"prepare: {err!r}", 0.0)
    before = snapshot([Path(p) for p in ctx.get("protect", [])])
    if "argv" in ctx:
        report, peak, seconds = run_cli([str(a) for a in ctx["argv"]], d, timeout, mem_cap)
    else:
        report, peak, seconds = run_api(case, d, ctx, timeout, mem_cap)
    outcome, detail = classify(case, d, ctx, report, peak, mem_cap, before)
    return Result(case.category, case.name, case.expected, outcome, detail, round(seconds, 2), round(peak, 3))


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


def _raw(data: bytes, name="x.png"):
    def make(d: Path) -> Path:
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
        return d / name
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


def _animated(fmt: str):
    def make(d: Path) -> Path:
        from PIL import Image

        d.mkdir(parents=True, exist_ok=True)
        frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
        frames[0].save(d / f"x.{fmt}", save_all=True, append_images=frames[1:])
        return d / f"x.{fmt}"
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


# ------------------------------------------------------------------------------------------- data loss (writers)
def _user_voc(root: Path) -> list[Path]:
    base = root / "VOCdevkit" / "VOC2007"
    files = [noise(base / "JPEGImages" / "000001.jpg", seed=9)]
    (base / "Annotations").mkdir(parents=True)
    (base / "Annotations" / "000001.xml").write_text(VOC_OK.replace("{stem}", "000001"))
    (base / "ImageSets" / "Main").mkdir(parents=True)
    (base / "ImageSets" / "Main" / "train.txt").write_text("000001\n")
    (base / "ImageSets" / "Main" / "val.txt").write_text("000001\n")
    return [*files, base / "Annotations" / "000001.xml", base / "ImageSets/Main/train.txt",
            base / "ImageSets/Main/val.txt"]  # fmt: skip


def _user_coco(root: Path) -> list[Path]:
    files = [noise(root / "train" / "000001.jpg", seed=3), noise(root / "val" / "000002.jpg", seed=4)]
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco_base()))
        files.append(root / "annotations" / f"instances_{split}.json")
    return files


def _shapes(d: Path, ctx: Ctx, **kw) -> Any:
    from lightning_retina.data import make_shapes_dataset

    return make_shapes_dataset(ctx["target"], num_train=2, num_val=1, image_size=32, **kw)


def _detect(d: Path, ctx: Ctx, **kw) -> Any:
    from lightning_retina.detect import run_detect

    return run_detect(CKPT, ctx["inputs"], out=ctx["out"], score_thresh=0.0, **kw)


def _demo(d: Path, ctx: Ctx) -> Any:
    from lightning_retina.demo import DemoConfig, run_demo

    return run_demo(DemoConfig(data_dir=str(ctx["data"]), out=str(ctx["out"]), max_minutes=0.02, num_train=2,
                               num_val=1, accelerator="cpu"))  # fmt: skip


def _export(d: Path, ctx: Ctx) -> Any:
    from lightning_retina.cli import main

    rc = main(["export", "--ckpt", str(CKPT), "--format", "torchscript", "--out", str(ctx["out"])])
    return rc


def writer_cases() -> list[Case]:
    def shapes_into(make_user, fmt="voc"):
        def prepare(d: Path) -> Ctx:
            return {"target": d / "root", "protect": make_user(d / "root"), "fmt": fmt}
        return prepare

    def one_file(name: str):
        def make(root: Path) -> list[Path]:
            root.mkdir(parents=True, exist_ok=True)
            (root / name).write_text("mine\n")
            return [root / name]
        return make

    def detect_prep(layout: Callable[[Path], Ctx]):
        def prepare(d: Path) -> Ctx:
            ctx = layout(d)
            ctx.setdefault("protect", [])
            ctx["protect"] += [p for p in ctx["inputs"] if Path(p).is_file()]
            return ctx
        return prepare

    def same_stem(d: Path) -> Ctx:
        return {"inputs": [noise(d / "a" / "x.jpg", seed=1), noise(d / "b" / "x.png", seed=2)], "out": d / "out"}

    def two_outputs(result, ctx, w) -> str | None:
        data = json.loads((ctx["out"] / "detections.json").read_text())
        drawn = {r["drawn"] for r in data} | {p.relative_to(ctx["out"]).as_posix() for p in ctx["out"].rglob("*.png")}
        pngs = list(ctx["out"].rglob("*.png"))
        return None if len(pngs) == 2 else f"{len(pngs)} drawn files for 2 inputs ({sorted(drawn)})"

    def into_input_folder(d: Path) -> Ctx:
        return {"inputs": [noise(d / "photos" / "holiday.png", seed=1), noise(d / "photos" / "beach.jpg", seed=2)],
                "out": d / "photos"}

    def out_with_user_file(name: str):
        def layout(d: Path) -> Ctx:
            (d / "out").mkdir()
            (d / "out" / name).write_text("[1, 2]\n")
            return {"inputs": [noise(d / "in" / "x.png")], "out": d / "out", "protect": [d / "out" / name]}
        return layout

    def out_fake_manifest(d: Path) -> Ctx:
        (d / "out").mkdir()
        (d / "out" / "lightning-retina-detect.json").write_text(json.dumps({"files": ["keep.png"]}))
        noise(d / "out" / "keep.png")
        return {"inputs": [noise(d / "in" / "keep.png", seed=5)], "out": d / "out",
                "protect": [d / "out" / "keep.png", d / "out" / "lightning-retina-detect.json"]}

    def out_detect_twice(d: Path) -> Ctx:
        ctx = {"inputs": [noise(d / "in" / "x.png")], "out": d / "out"}
        return ctx

    def detect_twice(d: Path, ctx: Ctx) -> Any:
        _detect(d, ctx)
        (ctx["out"] / "notes.txt").write_text("user notes\n")
        ctx["protect"] = [ctx["out"] / "notes.txt"]
        _detect(d, ctx)
        return (ctx["out"] / "notes.txt").read_text()

    def out_is_input_file(d: Path) -> Ctx:
        return {"inputs": [noise(d / "x.png")], "out": d / "x.png"}

    def demo_prep(out_files: dict[str, str] | None = None, data_user=None):
        def prepare(d: Path) -> Ctx:
            protect = []
            if out_files:
                (d / "out").mkdir()
                for name, text in out_files.items():
                    (d / "out" / name).write_text(text)
                    protect.append(d / "out" / name)
            if data_user:
                protect += data_user(d / "data")
            return {"out": d / "out", "data": d / "data", "protect": protect}
        return prepare

    def export_prep(kind: str):
        def prepare(d: Path) -> Ctx:
            target = d / "model.pt"
            if kind == "file":
                target.write_text("mine")
                return {"out": target, "protect": [target]}
            if kind == "folder":
                target.mkdir()
                (target / "f.txt").write_text("mine")
                return {"out": target, "protect": [target / "f.txt"]}
            return {"out": CKPT}
        return prepare

    refuse_shapes = {"names": ("root", "--overwrite")}
    shapes_ok = lambda r, c, w: None if (c["target"] / "shapes.json").is_file() else "no manifest"
    cases = [
        Case("data_loss", "make-shapes into a user VOC folder", "refuse", "refused, VOC files unchanged",
             shapes_into(_user_voc), _shapes, **refuse_shapes),
        Case("data_loss", "make-shapes coco into a user COCO folder", "refuse", "refused, COCO files unchanged",
             shapes_into(_user_coco, "coco"), lambda d, c: _shapes(d, c, format="coco"), **refuse_shapes),
        Case("data_loss", "make-shapes coco into a user VOC folder", "refuse", "refused",
             shapes_into(_user_voc, "coco"), lambda d, c: _shapes(d, c, format="coco"), **refuse_shapes),
        Case("data_loss", "make-shapes into a folder with one user file", "refuse", "refused",
             shapes_into(one_file("notes.txt")), _shapes, **refuse_shapes),
        Case("data_loss", "make-shapes into a folder with a foreign shapes.json", "refuse", "refused",
             shapes_into(one_file("shapes.json")), _shapes, **refuse_shapes),
        Case("data_loss", "make-shapes onto an existing file", "refuse", "refused naming the file",
             lambda d: {"target": d / "root", "protect": one_file("root")(d)}, _shapes, names=("root", "file")),
        Case("data_loss", "make-shapes twice into its own folder", "work", "rewritten (its own folder)",
             lambda d: {"target": d / "root"}, lambda d, c: (_shapes(d, c), _shapes(d, c, seed=1)), (), shapes_ok),
        Case("data_loss", "make-shapes into an empty folder", "work", "written",
             lambda d: (d / "root").mkdir() or {"target": d / "root"}, _shapes, (), shapes_ok),
        Case("data_loss", "demo --out holding a user's metrics.json", "refuse", "refused before training",
             demo_prep({"metrics.json": '{"mine": 1}'}), _demo, ("out", "--overwrite")),
        Case("data_loss", "demo --out holding a user's model.ckpt", "refuse", "refused before training",
             demo_prep({"model.ckpt": "weights"}), _demo, ("out", "--overwrite")),
        Case("data_loss", "demo --data-dir a user's VOC root", "refuse", "refused, VOC files unchanged",
             demo_prep(data_user=_user_voc), _demo, ("data",)),
        Case("data_loss", "demo --data-dir a user's COCO root", "refuse", "refused, COCO files unchanged",
             demo_prep(data_user=_user_coco), _demo, ("data",)),
        Case("data_loss", "detect --out the inputs' folder", "either",
             "inputs unchanged: refused, or drawn files beside them under other names",
             detect_prep(into_input_folder), _detect, ("photos",)),
        Case("data_loss", "detect same stem a/x.jpg b/x.png", "work", "two drawn files, both inputs unchanged",
             detect_prep(same_stem), _detect, (), two_outputs),
        Case("data_loss", "detect --out holding a user's detections.json", "refuse", "refused",
             detect_prep(out_with_user_file("detections.json")), _detect, ("out", "--overwrite")),
        Case("data_loss", "detect --out holding a user's x.png", "refuse", "refused",
             detect_prep(out_with_user_file("x.png")), _detect, ("out", "--overwrite")),
        Case("data_loss", "detect --out with a manifest not written by detect", "refuse", "refused",
             detect_prep(out_fake_manifest), _detect, ("out",)),
        Case("data_loss", "detect twice, user file added between", "work", "second run keeps the user's notes.txt",
             detect_prep(out_detect_twice), detect_twice, (), lambda r, c, w: None if r == "user notes\n" else r),
        Case("data_loss", "detect --out an input file", "refuse", "refused naming x.png",
             detect_prep(out_is_input_file), _detect, ("x.png",)),
        Case("data_loss", "detect --overwrite --out the inputs' folder", "either",
             "inputs never overwritten, even with --overwrite", detect_prep(into_input_folder),
             lambda d, c: _detect(d, c, overwrite=True), ("photos",)),
        Case("data_loss", "export --out an existing file", "work", "refused (rc 2 via SystemExit), file unchanged",
             export_prep("file"), lambda d, c: _catch_exit(_export, d, c), (),
             lambda r, c, w: None if r and "exists" in r else f"not refused: {r}"),
        Case("data_loss", "export --out a folder", "work", "refused, folder unchanged",
             export_prep("folder"), lambda d, c: _catch_exit(_export, d, c), (),
             lambda r, c, w: None if r and "folder" in r else f"not refused: {r}"),
    ]
    return cases


def _catch_exit(fn, d, ctx) -> str | None:
    try:
        fn(d, ctx)
    except SystemExit as exit_:
        return str(exit_.code)
    return None


# ---------------------------------------------------------------------------------------------------- CLI cases
def cli_case(name: str, argv: Callable[[Path], list], expect="refuse", names=(), check=None, expected="",
             protect: Callable[[Path], list[Path]] | None = None) -> Case:  # fmt: skip
    def prepare(d: Path) -> Ctx:
        ctx = {"protect": protect(d) if protect else []}
        ctx["argv"] = argv(d)
        ctx["d"] = d
        return ctx

    return Case("cli", name, expect, expected or f"one-line error naming {' and '.join(names) or 'the problem'}",
                prepare, None, names, check)  # fmt: skip


def cli_cases() -> list[Case]:
    def det(*extra):
        return lambda d: ["detect", "--ckpt", CKPT, noise(d / "in" / "x.png"), "--out", d / "out", *extra]

    def demo(*extra):
        return lambda d: ["demo", "--out", d / "out", "--data-dir", d / "data", "--max-minutes", "0.02",
                          "--num-train", "2", "--num-val", "1", *extra]

    def write(path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def gif_and_good(d: Path) -> list:
        _animated("gif")(d / "in")
        noise(d / "in" / "good.png")
        return ["detect", "--ckpt", CKPT, d / "in", "--out", d / "out"]

    def bomb_and_good(d: Path) -> list:
        bomb_png(d / "in" / "bomb.png", 20000)
        noise(d / "in" / "good.png")
        return ["detect", "--ckpt", CKPT, d / "in", "--out", d / "out"]

    def good_drawn(r, c, w) -> str | None:
        return None if (c["d"] / "out" / "good.png").is_file() else "good.png not drawn"

    cases = [
        cli_case("detect --score-thresh 2", det("--score-thresh", "2"), names=("--score-thresh", "2")),
        cli_case("detect --score-thresh nan", det("--score-thresh", "nan"), names=("--score-thresh", "nan")),
        cli_case("detect --score-thresh -0.1", det("--score-thresh", "-0.1"), names=("--score-thresh",)),
        cli_case("detect --score-thresh inf", det("--score-thresh", "inf"), names=("--score-thresh",)),
        cli_case("detect --score-thresh abc", det("--score-thresh", "abc"), names=("--score-thresh", "abc")),
        cli_case("detect --device cuda without GPU", det("--device", "cuda"), names=("cuda",)),
        cli_case("detect --device cuda:7", det("--device", "cuda:7"), names=("cuda",)),
        cli_case("detect --device tpu", det("--device", "tpu"), names=("tpu",)),
        cli_case("detect --device mps", det("--device", "mps"), names=("mps",)),
        cli_case("detect --batch-size 0", det("--batch-size", "0"), names=("--batch-size",)),
        cli_case("detect --max-pixels -5", det("--max-pixels", "-5"), names=("--max-pixels",)),
        cli_case("detect --out an existing file",
                 lambda d: ["detect", "--ckpt", CKPT, noise(d / "in" / "x.png"), "--out", write(d / "o.txt", "x")],
                 names=("o.txt",), protect=lambda d: [d / "o.txt"]),
        cli_case("detect a missing image", lambda d: ["detect", "--ckpt", CKPT, d / "nope.png", "--out", d / "out"],
                 names=("nope.png",)),
        cli_case("detect an empty folder",
                 lambda d: (d / "empty").mkdir() or ["detect", "--ckpt", CKPT, d / "empty", "--out", d / "out"],
                 names=("empty",)),
        cli_case("detect a glob matching nothing",
                 lambda d: ["detect", "--ckpt", CKPT, str(d / "*.jpg"), "--out", d / "out"], names=("*.jpg",)),
        cli_case("detect a folder of images",
                 lambda d: (noise(d / "in" / "a.png"), noise(d / "in" / "b.jpg"))
                 and ["detect", "--ckpt", CKPT, d / "in", "--out", d / "out"], "work",
                 check=lambda r, c, w: None if len(list((c["d"] / "out").glob("*.png"))) == 2 else "not 2 drawn",
                 expected="both images drawn"),
        cli_case("detect multi-frame GIF next to a good image", gif_and_good, "work", check=good_drawn,
                 expected="good.png processed; the GIF's first frame used with a warning"),
        cli_case("detect 20000x20000 bomb next to a good image", bomb_and_good, "refuse",
                 names=("bomb.png", "limit"), check=good_drawn,
                 expected="rc 1: bomb.png refused naming the pixel limit, good.png drawn"),
        cli_case("detect --ckpt missing", lambda d: ["detect", "--ckpt", d / "no.ckpt", noise(d / "x.png"),
                 "--out", d / "out"], names=("no.ckpt",)),
        cli_case("detect --ckpt a JSON file", lambda d: ["detect", "--ckpt", write(d / "m.ckpt", '{"a": 1}'),
                 noise(d / "x.png"), "--out", d / "out"], names=("m.ckpt",)),
        cli_case("make-shapes onto an existing file", lambda d: ["make-shapes", write(d / "data", "mine")],
                 names=("data",), protect=lambda d: [d / "data"]),
        cli_case("make-shapes into a user VOC root", lambda d: (_user_voc(d / "voc"), ["make-shapes", d / "voc"])[1],
                 names=("voc", "--overwrite"), protect=lambda d: [*_user_voc(d / "voc_probe")]),
        cli_case("make-shapes --image-size 8", lambda d: ["make-shapes", d / "s", "--image-size", "8"],
                 names=("image_size", "8")),
        cli_case("make-shapes --num-train -1", lambda d: ["make-shapes", d / "s", "--num-train", "-1"],
                 names=("-1",)),
        cli_case("make-shapes --format yolo", lambda d: ["make-shapes", d / "s", "--format", "yolo"],
                 names=("yolo",)),
        cli_case("make-shapes tiny set", lambda d: ["make-shapes", d / "s", "--num-train", "2", "--num-val", "1",
                                                    "--image-size", "32"], "work", expected="written",
                 check=lambda r, c, w: None if (c["d"] / "s" / "shapes.json").is_file() else "no shapes.json"),
        cli_case("fit with malformed YAML config",
                 lambda d: ["fit", "--config", write(d / "bad.yaml", "model:\n  lr: [1, 2\n  x: :\n")],
                 names=("bad.yaml",)),
        cli_case("fit with a tab-indented YAML config",
                 lambda d: ["fit", "--config", write(d / "tabs.yaml", "model:\n\tlr: 0.1\n")], names=("tabs.yaml",)),
        cli_case("fit with a YAML list as config",
                 lambda d: ["fit", "--config", write(d / "list.yaml", "- 1\n- 2\n")], names=("list.yaml",)),
        cli_case("fit with a binary config",
                 lambda d: ["fit", "--config", _raw(b"\xff\xfe\x00\x01" * 10, "bin.yaml")(d)], names=("bin.yaml",)),
        cli_case("fit --config missing", lambda d: ["fit", "--config", d / "none.yaml"], names=("none.yaml",)),
        cli_case("validate --ckpt_path missing", lambda d: ["validate", "--ckpt_path", d / "none.ckpt",
                 "--data.dataset", "shapes", "--data.root", d / "s"], names=("none.ckpt",)),
        cli_case("validate --ckpt_path a JSON file", lambda d: ["validate", "--ckpt_path",
                 write(d / "j.ckpt", "{}"), "--data.dataset", "shapes", "--data.root", d / "s"], names=("j.ckpt",)),
        cli_case("demo --num-val 0", demo("--num-val", "0"), names=("--num-val",)),
        cli_case("demo --num-train 0", demo("--num-train", "0"), names=("--num-train",)),
        cli_case("demo --max-minutes 0", demo("--max-minutes", "0"), names=("--max-minutes",)),
        cli_case("demo --max-minutes nan", demo("--max-minutes", "nan"), names=("--max-minutes",)),
        cli_case("demo --accelerator gpu without GPU", demo("--accelerator", "gpu"), names=("gpu",)),
        cli_case("demo --accelerator tpu", demo("--accelerator", "tpu"), names=("tpu",)),
        cli_case("demo --out an existing file", lambda d: demo()(d)[:1] + ["--out", write(d / "o", "x")]
                 + demo()(d)[3:], names=("o",), protect=lambda d: [d / "o"]),
        cli_case("export --out an existing file", lambda d: ["export", "--ckpt", CKPT, "--format", "onnx", "--out",
                 write(d / "m.onnx", "mine")], names=("m.onnx", "--overwrite"), protect=lambda d: [d / "m.onnx"]),
        cli_case("export --format bad", lambda d: ["export", "--ckpt", CKPT, "--format", "tflite", "--out",
                 d / "m"], names=("tflite",)),
        cli_case("export --image-size 0 0", lambda d: ["export", "--ckpt", CKPT, "--format", "torchscript",
                 "--image-size", "0", "0", "--out", d / "m.pt"], names=("--image-size",)),
        cli_case("no command", lambda d: [], names=("command",)),
        cli_case("unknown command", lambda d: ["frobnicate"], names=("frobnicate",)),
    ]
    return cases


# ---------------------------------------------------------------------------------------------- checkpoints
def _load(d: Path, ctx: Ctx) -> Any:
    from lightning_retina.checkpoint import load_module

    return load_module(ctx["ckpt"])


def ckpt_case(name: str, make: Callable[[Path], Path], expect="refuse", names=(), check=None, expected="") -> Case:
    def prepare(d: Path) -> Ctx:
        return {"ckpt": make(d)}

    return Case("checkpoints", name, expect, expected or f"refused naming {' and '.join(names) or 'the file'}",
                prepare, _load, names, check)  # fmt: skip


def ckpt_cases() -> list[Case]:
    def hp(**changes):
        return lambda d: edited_ckpt(d, **changes)

    def payload(d: Path) -> Path:
        import torch

        torch.save({"state_dict": _Payload(d / "PWNED"), "hyper_parameters": {}}, d / "p.ckpt")
        return d / "p.ckpt"

    def plain_pickle(d: Path) -> Path:
        (d / "p.ckpt").write_bytes(pickle.dumps(_Payload(d / "PWNED")))
        return d / "p.ckpt"

    def raw(data: bytes):
        def make(d: Path) -> Path:
            (d / "m.ckpt").write_bytes(data)
            return d / "m.ckpt"
        return make

    def truncated(d: Path) -> Path:
        data = CKPT.read_bytes()
        (d / "m.ckpt").write_bytes(data[: len(data) // 2])
        return d / "m.ckpt"

    def edit(fn):
        def make(d: Path) -> Path:
            import torch

            checkpoint = torch.load(CKPT, weights_only=True)
            fn(checkpoint)
            torch.save(checkpoint, d / "m.ckpt")
            return d / "m.ckpt"
        return make

    def no_pwned(r, c, w) -> str | None:
        return "payload ran" if (c["ckpt"].parent / "PWNED").exists() else None

    def loaded(r, c, w) -> str | None:
        return None if not r.training else "not in eval mode"

    name = ("edited.ckpt",)
    cases = [
        ckpt_case("valid", lambda d: shutil.copy(CKPT, d / "m.ckpt") and d / "m.ckpt", "work", check=loaded,
                  expected="loads in eval mode"),
        ckpt_case("num_classes 10**6", hp(num_classes=10**6), names=(*name, "num_classes")),
        ckpt_case("num_classes -1", hp(num_classes=-1), names=(*name, "num_classes")),
        ckpt_case("num_classes '3'", hp(num_classes="3"), names=(*name, "num_classes")),
        ckpt_case("num_classes True", hp(num_classes=True), names=(*name, "num_classes")),
        ckpt_case("fpn_channels 10**6", hp(fpn_channels=10**6), names=(*name, "fpn_channels")),
        ckpt_case("min_size 10**9", hp(min_size=10**9, max_size=10**9), names=(*name, "min_size")),
        ckpt_case("detections_per_img 10**9", hp(detections_per_img=10**9), names=(*name, "detections_per_img")),
        ckpt_case("topk_candidates 10**12", hp(topk_candidates=10**12), names=(*name, "topk_candidates")),
        ckpt_case("anchor_sizes of 10**5 entries", hp(anchor_sizes=tuple(range(8, 8 + 10**5))), "either",
                  names=(*name, "anchor"), check=loaded, expected="refused naming anchor_sizes (or loads bounded)"),
        ckpt_case("backbone_weights /etc/passwd", hp(backbone_weights="/etc/passwd"), "work", check=loaded,
                  expected="loads without reading /etc/passwd"),
        ckpt_case("backbone_weights DEFAULT", hp(backbone_weights="DEFAULT"), "work", check=loaded,
                  expected="loads without any download"),
        ckpt_case("backbone_weights IMAGENET1K_V1", hp(backbone_weights="IMAGENET1K_V1"), "work", check=loaded,
                  expected="loads without any download"),
        ckpt_case("backbone resnet9999", hp(backbone="resnet9999"), names=(*name, "resnet9999")),
        ckpt_case("backbone os.system", hp(backbone="os.system"), names=(*name, "os.system")),
        ckpt_case("class_names length mismatch", hp(class_names=["a"]), names=(*name, "class_names")),
        ckpt_case("_instantiator os.system", hp(_instantiator="os.system"), names=name),
        ckpt_case("pickle payload in state_dict", payload, names=("p.ckpt",), check=no_pwned),
        ckpt_case("plain pickle payload", plain_pickle, names=("p.ckpt",), check=no_pwned),
        ckpt_case("JSON file as ckpt", raw(b'{"state_dict": {}, "hyper_parameters": {}}'), names=("m.ckpt",)),
        ckpt_case("empty file", raw(b""), names=("m.ckpt",)),
        ckpt_case("random bytes", raw(os.urandom(5000)), names=("m.ckpt",)),
        ckpt_case("truncated checkpoint", truncated, names=("m.ckpt",)),
        ckpt_case("tensor dict, no hparams", edit(lambda c: c.pop("hyper_parameters")), names=("m.ckpt",)),
        ckpt_case("hyper_parameters a list", edit(lambda c: c.update(hyper_parameters=[1, 2])), names=("m.ckpt",)),
        ckpt_case("state_dict missing a key", edit(lambda c: c["state_dict"].pop(next(iter(c["state_dict"])))),
                  names=("m.ckpt",)),
        ckpt_case("state_dict wrong shape", edit(lambda c: c["state_dict"].update(
            {k: v[:1] for k, v in list(c["state_dict"].items())[:1]})), names=("m.ckpt",)),
        ckpt_case("state_dict NaN weights", edit(lambda c: [v.fill_(float("nan")) for v in c["state_dict"].values()
                                                            if v.is_floating_point()]), "either", names=("m.ckpt",),
                  check=loaded, expected="loads as stored (a diverged run's checkpoint), or refused naming it"),
        ckpt_case("missing file", lambda d: d / "absent.ckpt", names=("absent.ckpt",)),
        ckpt_case("a folder", lambda d: (d / "dir.ckpt").mkdir() or d / "dir.ckpt", names=("dir.ckpt",)),
    ]
    return cases


# ------------------------------------------------------------------------------------------- ALWA state dicts
def alwa_cases() -> list[Case]:
    def load(state_key_settings: dict | None, state: dict, **alwa_kwargs):
        def act(d: Path, ctx: Ctx) -> Any:
            from lightning_retina.callbacks import ALWA

            alwa = ALWA(**alwa_kwargs)
            checkpoint = {"callbacks": {}}
            key = alwa.state_key if state_key_settings is None else "ALWA" + repr(
                {**state_key_settings, "groups": alwa.groups})
            checkpoint["callbacks"][key] = state
            alwa.on_load_checkpoint(None, None, checkpoint)
            alwa.load_state_dict(checkpoint["callbacks"].get(alwa.state_key, {}))
            return alwa
        return act

    import_torch = __import__("torch")
    hist = {"loss_cls": import_torch.tensor([1.0]), "loss_reg": import_torch.tensor([0.5])}

    def weight_is(value):
        return lambda r, c, w: None if abs(r.weights["loss_cls"] - value) < 1e-9 else f"w_cls {r.weights}"

    old = {"interval": 2, "statistic": "mean+std", "record": "raw"}
    return [
        Case("alwa", "current state, other interval", "work", "weights restored (0.011), new window",
             lambda d: {}, load(None, {"weights": {"loss_cls": 0.011}, "histories": hist, "window_steps": 1,
                                      "recorded_at": 5, "settings": {**old, "interval": 2}},
                                interval=3, statistic="mean+std", record="raw"), (), weight_is(0.011)),
        Case("alwa", "old key (settings in the key), same settings", "work", "weights restored from the old key",
             lambda d: {}, load(old, {"weights": {"loss_cls": 0.25}, "histories": hist, "window_steps": 1,
                                     "recorded_at": 5}, **old), (), weight_is(0.25)),
        Case("alwa", "old key, other interval", "work", "weights restored from the old key, new window",
             lambda d: {}, load(old, {"weights": {"loss_cls": 0.25}, "histories": hist, "window_steps": 1,
                                     "recorded_at": 5}, **{**old, "interval": 4}), (), weight_is(0.25)),
        Case("alwa", "first-release state (last_update_step)", "work", "weights restored",
             lambda d: {}, load(old, {"weights": {"loss_cls": 0.5}, "histories": hist, "last_update_step": 4},
                                **old), (), weight_is(0.5)),
    ]


def all_cases() -> list[Case]:
    return [*writer_cases(), *coco_cases(), *voc_cases(), *image_cases(), *ckpt_cases(), *alwa_cases(),
            *cli_cases()]  # fmt: skip


# ================================================================================================ report
def tally(results: list[Result]) -> dict[str, Counter]:
    table: dict[str, Counter] = {}
    for r in results:
        table.setdefault(r.category, Counter())[r.outcome] += 1
    table["total"] = sum(table.values(), Counter())
    return table


def markdown(results: list[Result]) -> str:
    table = tally(results)
    cols = ["inputs", *OUTCOMES, *sorted({r.outcome for r in results} - set(OUTCOMES))]
    lines = ["| category | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for cat, counts in table.items():
        cells = [str(sum(counts.values()))] + [str(counts.get(c, 0)) for c in cols[1:]]
        lines.append(f"| {'**total**' if cat == 'total' else cat} | " + " | ".join(cells) + " |")
    bad = [r for r in results if r.outcome != "ok"]
    lines += ["", "## Not ok", ""] + [f"- [{r.outcome}] {r.category} / {r.name}: {r.detail} (expected: {r.expected})"
                                      for r in bad] or ["(none)"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the generated inputs and the reports")
    parser.add_argument("--only", default="", help="comma-separated categories (default: all)")
    parser.add_argument("--match", default="", help="only cases whose name contains this")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--mem-cap-gib", type=float, default=2.0, help="peak memory above the start that counts "
                        "as resource exhaustion")  # fmt: skip
    args = parser.parse_args(argv)
    if sys.path[0] != str(REPO):  # `python benchmarks/reattack.py`: attack this checkout, not an installed copy
        sys.path.insert(0, str(REPO))

    import torch
    from tqdm.auto import tqdm

    torch.set_num_threads(1)  # no thread pool in the parent: forking stays safe
    warnings.filterwarnings("ignore")
    for module in ("checkpoint", "cli", "data.coco", "data.voc", "demo", "detect", "callbacks"):
        importlib.import_module(f"lightning_retina.{module}")  # imported once in the parent: each fork has them

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    global CKPT
    CKPT = out / "_base" / "model.ckpt"
    CKPT.parent.mkdir(exist_ok=True)
    if not CKPT.is_file():
        mk = Case("_", "checkpoint", "work", "", lambda d: {}, lambda d, c: make_checkpoint(CKPT))
        report, _, _ = run_api(mk, CKPT.parent, {}, 300, 4 * GIB)
        if report.get("raised") or not CKPT.is_file():
            print(f"could not write the base checkpoint: {report}", file=sys.stderr)
            return 1
    cases = all_cases()
    if args.only:
        cases = [c for c in cases if c.category in args.only.split(",")]
    if args.match:
        cases = [c for c in cases if args.match in c.name]
    mem_cap = int(args.mem_cap_gib * GIB)
    results = []
    for case in tqdm(cases, desc="re-attack", unit="case"):
        results.append(run_case(case, out, args.timeout, mem_cap))
    (out / "reattack.json").write_text(json.dumps([r.__dict__ for r in results], indent=1, default=str) + "\n")
    text = markdown(results)
    (out / "reattack.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
