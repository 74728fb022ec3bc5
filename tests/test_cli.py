"""The `lightning-retina` command: help, configs, fit, make-shapes, detect and a tiny demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lightning_retina.checkpoint import load_module
from lightning_retina.cli import main

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


def test_make_shapes_drawing_options(tmp_path, capsys):
    argv = ["make-shapes", str(tmp_path / "easy"), "--format", "coco", "--num-train", "6", "--num-val", "0",
            "--image-size", "64", "--objects-per-image", "2", "2", "--shape-sizes", "16", "24",
            "--crowd-probability", "0"]  # fmt: skip
    assert main(argv) == 0
    annotations = json.loads((tmp_path / "easy" / "annotations" / "instances_train.json").read_text())["annotations"]
    assert len(annotations) == 12 and all(max(a["bbox"][2:]) <= 24 and not a["iscrowd"] for a in annotations)
    assert main([argv[0], str(tmp_path / "bad"), *argv[2:-1], "1.5"]) == 2
    assert "crowd_probability must be in [0, 1], got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


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


def test_detect_runs_on_the_demo_checkpoint(demo_out, tmp_path):
    images = demo_out.parent / "data" / "VOCdevkit" / "VOC2007" / "JPEGImages"
    argv = ["detect", "--ckpt", str(demo_out / "model.ckpt"), str(images), "--out", str(tmp_path / "drawn"),
            "--score-thresh", "0.0"]  # fmt: skip
    assert main(argv) == 0
    drawn = sorted(p.name for p in (tmp_path / "drawn").glob("*.png"))
    assert drawn == sorted(p.with_suffix(".png").name for p in images.glob("*.jpg"))
    results = json.loads((tmp_path / "drawn" / "detections.json").read_text())
    assert {r["category_name"] for r in results} <= {"circle", "square", "triangle", "star"}
