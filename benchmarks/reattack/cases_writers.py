"""Writers into user folders (make-shapes, demo, detect, export): the cases of category ``data_loss``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import inputs
from .harness import Case, Ctx
from .inputs import _user_coco, _user_voc, noise


def _shapes(d: Path, ctx: Ctx, **kw) -> Any:
    from lightning_retina.data import make_shapes_dataset

    return make_shapes_dataset(ctx["target"], num_train=2, num_val=1, image_size=32, **kw)


def _detect(d: Path, ctx: Ctx, **kw) -> Any:
    from lightning_retina.detect import run_detect

    return run_detect(inputs.CKPT, ctx["inputs"], out=ctx["out"], score_thresh=0.0, **kw)


def _demo(d: Path, ctx: Ctx) -> Any:
    from lightning_retina.demo import DemoConfig, run_demo

    return run_demo(DemoConfig(data_dir=str(ctx["data"]), out=str(ctx["out"]), max_minutes=0.02, num_train=2,
                               num_val=1, accelerator="cpu"))  # fmt: skip


def _export(d: Path, ctx: Ctx) -> Any:
    from lightning_retina.cli import main

    rc = main(["export", "--ckpt", str(inputs.CKPT), "--format", "torchscript", "--out", str(ctx["out"])])
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
            return {"out": inputs.CKPT}
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
