"""The CLI checks choices when parsing, lists every command, documents every option, warns nothing spurious, and
evaluates a checkpoint on the data it was trained with without rewriting that data."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import pytest
import torch

from lightning_retina.cli import RetinaNetCLI, _extra_parser, main
from lightning_retina.data import DetectionDataModule
from lightning_retina.module import RetinaNetModule
from tests.test_own_data import folder_digest

SHAPES_CONFIG = Path(__file__).parents[1] / "examples" / "configs" / "shapes.yaml"


@pytest.mark.parametrize(
    ("key", "bad", "allowed"),
    [
        ("model.cls_loss", "focall", "'focal', 'bce', 'balanced_bce'"),
        ("model.reg_loss", "giuo", "'smooth_l1', 'l1', 'iou', 'giou', 'diou', 'ciou'"),
        ("model.backbone", "resnet181", "'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152'"),
        ("model.metric", "map", "'coco', 'voc', 'voc07'"),
        ("model.optimizer", "adam", "'sgd', 'adamw'"),
        ("model.lr_schedule", "poly", "'step', 'cosine', 'constant'"),
        ("model.head_norm", "batch", "'none', 'group'"),
        ("model.normalization", "global", "'batch', 'per_image'"),
        ("data.dataset", "kitti", "'voc', 'coco', 'shapes'"),
    ],
)
def test_choices_are_checked_when_parsing(key: str, bad: str, allowed: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(SHAPES_CONFIG), f"--{key}", bad, "--print_config"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f'"{key}"' in err and allowed in err and bad in err


def test_top_level_help_lists_every_sub_command(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "{fit,validate,test,predict,demo,make-shapes,detect,export}" in out.replace("\n", "").replace(" ", "")
    for command in ("fit", "validate", "test", "predict", "demo", "make-shapes", "detect"):
        assert any(line.split()[:1] == [command] and len(line.split()) > 1 for line in out.splitlines()), command


@pytest.mark.parametrize("command", ["demo", "make-shapes", "detect"])
def test_every_option_has_help(command: str) -> None:
    parser, _ = _extra_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    actions = [a for a in subparsers.choices[command]._actions if not isinstance(a, argparse._HelpAction)]
    assert actions and [a.dest for a in actions if not a.help] == []


def test_no_spurious_args_warning(monkeypatch, capsys) -> None:
    argv = ["fit", "--config", str(SHAPES_CONFIG), "--print_config"]
    monkeypatch.setattr(sys, "argv", ["lightning-retina", *argv])  # as the console script runs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SystemExit):
            main(argv)
    assert not [w for w in caught if "intended to run from within Python" in str(w.message)]


def _fit_tiny(tmp_path: Path, data_root: Path) -> Path:
    """Fit 2 steps on a shapes folder made with 8/4 images; returns the checkpoint."""
    assert main(["make-shapes", str(data_root), "--num-train", "8", "--num-val", "4", "--image-size", "64"]) == 0
    argv = ["fit", "--config", str(SHAPES_CONFIG), "--trainer.max_steps", "2", "--trainer.check_val_every_n_epoch", "1",
            "--trainer.precision", "32-true",
            "--trainer.accelerator", "cpu", "--trainer.logger", "false", "--trainer.callbacks", "[]",
            "--trainer.default_root_dir", str(tmp_path / "run"), "--data.root", str(data_root),
            "--data.shapes_num_train", "8", "--data.shapes_num_val", "4", "--data.shapes_image_size", "64",
            "--data.batch_size", "4", "--data.num_workers", "0", "--model.min_size", "64", "--model.max_size", "64"]  # fmt: skip
    assert main(argv) == 0
    (ckpt,) = (tmp_path / "run" / "checkpoints").glob("*.ckpt")
    return ckpt


def test_validate_with_a_checkpoint_reuses_its_data_settings_and_rewrites_nothing(tmp_path: Path) -> None:
    data_root = tmp_path / "shapes_small"
    ckpt = _fit_tiny(tmp_path, data_root)
    saved = torch.load(ckpt, weights_only=True)["datamodule_hyper_parameters"]
    assert (saved["shapes_num_train"], saved["shapes_num_val"]) == (8, 4)
    before = folder_digest(data_root)
    common = ["--config", str(SHAPES_CONFIG), "--data.root", str(data_root), "--ckpt_path", str(ckpt),
              "--trainer.precision", "32-true", "--trainer.accelerator", "cpu", "--trainer.logger", "false",
              "--trainer.callbacks", "[]", "--trainer.default_root_dir", str(tmp_path / "eval")]  # fmt: skip
    for command in ("validate", "test"):
        assert main([command, *common]) == 0
    assert folder_digest(data_root) == before
    cli = RetinaNetCLI(RetinaNetModule, DetectionDataModule, args=["validate", *common], save_config_callback=None)
    assert (cli.datamodule.hparams.shapes_num_val, len(cli.datamodule.datasets["val"])) == (4, 4)
    override = RetinaNetCLI(RetinaNetModule, DetectionDataModule, run=False, save_config_callback=None,
                            args=["--config", str(SHAPES_CONFIG), "--data.shapes_num_val", "3"])  # fmt: skip
    assert override.datamodule.hparams.shapes_num_val == 3  # no checkpoint: the config and arguments as given
    with pytest.raises(ValueError, match=r"--data.shapes_num_val 4 \(asked 3\)"):
        main(["validate", *common, "--data.shapes_num_val", "3"])  # an explicit override is used, never written
    assert folder_digest(data_root) == before
