"""Command lines of ``python -m lightning_retina.cli``: the cases of category ``cli``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import inputs
from .harness import Case, Ctx
from .inputs import _animated, _raw, _user_voc, bomb_png, noise


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
        return lambda d: ["detect", "--ckpt", inputs.CKPT, noise(d / "in" / "x.png"), "--out", d / "out", *extra]

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
        return ["detect", "--ckpt", inputs.CKPT, d / "in", "--out", d / "out"]

    def bomb_and_good(d: Path) -> list:
        bomb_png(d / "in" / "bomb.png", 20000)
        noise(d / "in" / "good.png")
        return ["detect", "--ckpt", inputs.CKPT, d / "in", "--out", d / "out"]

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
                 lambda d: ["detect", "--ckpt", inputs.CKPT, noise(d / "in" / "x.png"), "--out",
                            write(d / "o.txt", "x")],
                 names=("o.txt",), protect=lambda d: [d / "o.txt"]),
        cli_case("detect a missing image",
                 lambda d: ["detect", "--ckpt", inputs.CKPT, d / "nope.png", "--out", d / "out"],
                 names=("nope.png",)),
        cli_case("detect an empty folder",
                 lambda d: (d / "empty").mkdir() or ["detect", "--ckpt", inputs.CKPT, d / "empty", "--out", d / "out"],
                 names=("empty",)),
        cli_case("detect a glob matching nothing",
                 lambda d: ["detect", "--ckpt", inputs.CKPT, str(d / "*.jpg"), "--out", d / "out"], names=("*.jpg",)),
        cli_case("detect a folder of images",
                 lambda d: (noise(d / "in" / "a.png"), noise(d / "in" / "b.jpg"))
                 and ["detect", "--ckpt", inputs.CKPT, d / "in", "--out", d / "out"], "work",
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
        cli_case("export --out an existing file", lambda d: ["export", "--ckpt", inputs.CKPT, "--format", "onnx",
                 "--out", write(d / "m.onnx", "mine")], names=("m.onnx", "--overwrite"),
                 protect=lambda d: [d / "m.onnx"]),
        cli_case("export --format bad", lambda d: ["export", "--ckpt", inputs.CKPT, "--format", "tflite", "--out",
                 d / "m"], names=("tflite",)),
        cli_case("export --image-size 0 0", lambda d: ["export", "--ckpt", inputs.CKPT, "--format", "torchscript",
                 "--image-size", "0", "0", "--out", d / "m.pt"], names=("--image-size",)),
        cli_case("no command", lambda d: [], names=("command",)),
        cli_case("unknown command", lambda d: ["frobnicate"], names=("frobnicate",)),
    ]
    return cases
