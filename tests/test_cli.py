"""The `lightning-retina` command: help, configs, fit, make-shapes, detect and a tiny demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lightning_retina.cli import main
from lightning_retina.detect import load_module

CONFIGS = sorted((Path(__file__).parents[1] / "examples" / "configs").glob("*.yaml"))
TINY_SHAPES = ["--data.shapes_num_train", "4", "--data.shapes_num_val", "2", "--data.shapes_image_size", "64",
               "--data.num_workers", "0", "--data.batch_size", "2"]  # fmt: skip


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "make-shapes", "detect", "fit", "validate", "test", "predict"):
        assert command in out


@pytest.mark.parametrize("argv", [["train"], ["demo", "--max-minuets", "1"], ["make-shapes"]])
def test_bad_command_line_gives_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_parses(config, capsys):
    assert len(CONFIGS) >= 3
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "class_path: lightning_retina.callbacks.ALWA" in printed


def test_fit_shapes_config_fast_dev_run(tmp_path):
    config = Path(__file__).parents[1] / "examples" / "configs" / "shapes.yaml"
    argv = ["fit", "--config", str(config), "--trainer.fast_dev_run", "1", "--trainer.precision", "32-true",
            "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path / "run"),
            "--data.root", str(tmp_path / "shapes"), *TINY_SHAPES]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "shapes" / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main" / "val.txt").is_file()


def test_fit_with_missing_voc_root_says_where(tmp_path, capsys):
    config = Path(__file__).parents[1] / "examples" / "configs" / "voc.yaml"
    argv = ["fit", "--config", str(config), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
            "--trainer.strategy", "auto", "--model.backbone_weights", "null", "--data.root", str(tmp_path / "nowhere")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "nowhere") in err and "VOC" in err


def test_make_shapes_writes_both_layouts(tmp_path):
    assert main(["make-shapes", str(tmp_path / "voc"), "--num-train", "3", "--num-val", "2", "--image-size", "64"]) == 0
    assert len(list((tmp_path / "voc" / "VOCdevkit" / "VOC2007" / "Annotations").glob("*.xml"))) == 5
    assert main(["make-shapes", str(tmp_path / "coco"), "--format", "coco", "--num-train", "3", "--num-val", "2",
                 "--image-size", "64"]) == 0  # fmt: skip
    assert len(json.loads((tmp_path / "coco" / "annotations" / "instances_val.json").read_text())["images"]) == 2


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    argv = ["demo", "--data-dir", str(out / "data"), "--out", str(out / "result"), "--max-minutes", "0.05",
            "--num-train", "8", "--num-val", "4", "--accelerator", "cpu"]  # fmt: skip
    assert main(argv) == 0
    return out / "result"


def test_demo_writes_pictures_metrics_and_checkpoint(demo_out):
    for name in ("detections.png", "training.png", "metrics.json", "model.ckpt"):
        assert (demo_out / name).stat().st_size > 0, name
    metrics = json.loads((demo_out / "metrics.json").read_text())
    for key in ("map", "map_50", "map_75", "map_per_class", "steps", "loss_weights"):
        assert key in metrics
    assert 0.0 <= metrics["map_50"] <= 1.0 and metrics["steps"] >= 1
    assert set(metrics["map_per_class"]) <= {"circle", "square", "triangle", "star"}


def test_demo_checkpoint_loads_weights_only(demo_out):
    checkpoint = torch.load(demo_out / "model.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["class_names"] == ["circle", "square", "triangle", "star"]
    module = load_module(demo_out / "model.ckpt")
    assert module.class_names == ["circle", "square", "triangle", "star"]


def test_detect_prints_json_and_writes_images(demo_out, tmp_path, capsys):
    image = next((demo_out.parent / "data" / "VOCdevkit" / "VOC2007" / "JPEGImages").glob("*.jpg"))
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    inputs = [str(image), str(not_an_image), str(tmp_path / "missing.jpg")]
    argv = ["detect", "--ckpt", str(demo_out / "model.ckpt"), *inputs, "--out", str(tmp_path / "drawn"),
            "--score-thresh", "0.0"]  # fmt: skip
    assert main(argv) == 1  # two of three inputs are bad
    captured = capsys.readouterr()
    (line,) = captured.out.strip().splitlines()
    record = json.loads(line)
    assert record["image"] == str(image) and Path(record["output"]).is_file()
    assert all(set(d) == {"label", "score", "box"} for d in record["detections"])
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2
    assert "notes.txt is not a readable image" in errors[0] and "missing.jpg does not exist" in errors[1]


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_detect_refuses_a_file_that_is_not_a_checkpoint(tmp_path, capsys, content):
    path = tmp_path / "fake.ckpt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)  # loads safely but is not a module checkpoint
    else:
        path.write_bytes(content)
    image = tmp_path / "x.png"
    assert main(["detect", "--ckpt", str(path), str(image)]) == 2
    err = capsys.readouterr().err
    assert "fake.ckpt is not" in err and "Traceback" not in err
