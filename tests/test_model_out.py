"""Acceptance of the model-out issue: `fit` through the CLI, then `detect` on a folder, `predict` to COCO JSON and
`export` in every format whose runtime is installed."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lightning_retina.checkpoint import load_module
from lightning_retina.cli import main
from lightning_retina.data import decode_image
from tests.test_export import EXPORT_FORMATS, assert_equal_to_eager, run_exported

FIT = ["--model.backbone", "resnet18", "--model.fpn_channels", "32", "--model.head_norm", "group",
       "--model.min_size", "64", "--model.max_size", "64", "--model.anchor_sizes", "[8, 16, 32, 64, 128]",
       "--model.optimizer", "adamw", "--model.lr", "0.002", "--model.warmup_steps", "1",
       "--data.dataset", "shapes", "--data.shapes_format", "coco", "--data.shapes_num_train", "8",
       "--data.shapes_num_val", "4", "--data.shapes_image_size", "64", "--data.num_workers", "0",
       "--data.batch_size", "4", "--trainer.max_steps", "4", "--trainer.accelerator", "cpu",
       "--trainer.precision", "32-true", "--trainer.enable_progress_bar", "false",
       "--model.score_thresh", "0.0"]  # fmt: skip  (4 steps leave every score below the default 0.05)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("model_out")
    run = root / "run"
    assert main(["fit", *FIT, "--data.root", str(root / "shapes"), "--trainer.default_root_dir", str(run)]) == 0
    (ckpt,) = (run / "lightning_logs" / "version_0" / "checkpoints").glob("*.ckpt")
    return root, run, ckpt


def test_detect_on_a_folder_with_a_fit_checkpoint(fitted, tmp_path):
    root, _, ckpt = fitted
    images = sorted((root / "shapes" / "val").glob("*.jpg"))
    out = tmp_path / "detected"
    argv = ["detect", "--ckpt", str(ckpt), str(root / "shapes" / "val"), "--out", str(out), "--score-thresh", "0"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.glob("*.png")) == [p.with_suffix(".png").name for p in images]
    results = json.loads((out / "detections.json").read_text())
    assert results, "a score threshold of 0 keeps every detection of the model"
    for entry in results:
        assert entry["file_name"] == str(images[entry["image_id"]])
        assert entry["drawn"] == images[entry["image_id"]].with_suffix(".png").name
        assert entry["category_id"] in (1, 2, 3, 4)  # the COCO category ids of the shapes set, not labels 0..3
        assert entry["category_name"] == ("circle", "square", "triangle", "star")[entry["category_id"] - 1]
        x, y, w, h = entry["bbox"]
        assert 0 <= x and 0 <= y and w >= 0 and h >= 0 and x + w <= 64.001 and y + h <= 64.001


def test_predict_writes_coco_results_that_cocoeval_reads(fitted, capsys):
    root, run, ckpt = fitted
    config = run / "lightning_logs" / "version_0" / "config.yaml"
    assert main(["predict", "--config", str(config), "--ckpt_path", str(ckpt)]) == 0
    predicted = run / "lightning_logs" / "version_1" / "predict_results.json"
    assert f"Wrote COCO results to {predicted}" in capsys.readouterr().out
    ann_file = root / "shapes" / "annotations" / "instances_val.json"
    results = json.loads(predicted.read_text())
    assert {r["image_id"] for r in results} == {i["id"] for i in json.loads(ann_file.read_text())["images"]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        evaluation = COCOeval(gt, gt.loadRes(str(predicted)), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert 0.0 <= evaluation.stats[0] <= 1.0


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_export_of_a_fit_checkpoint_gives_its_detections(fitted, tmp_path, fmt):
    """`export` in every available format, run on two of the data set's own images, equals the eager module."""
    root, _, ckpt = fitted
    paths = sorted((root / "shapes" / "val").glob("*.jpg"))[:2]
    images = torch.stack([decode_image(path) for path in paths])
    out = tmp_path / f"model.{fmt}"
    assert main(["export", "--ckpt", str(ckpt), "--format", fmt, "--out", str(out), "--batch-size", "2"]) == 0
    assert_equal_to_eager(run_exported(fmt, out, images), load_module(ckpt)(images))
