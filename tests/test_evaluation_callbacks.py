"""EvaluationImages (to TensorBoard, nothing for CSV), EvaluationPlots' PNGs after test/validate, per-class AP logs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader

from lightning_retina.callbacks import EvaluationImages, EvaluationPlots
from lightning_retina.callbacks.evaluation_images import log_images
from lightning_retina.cli import main
from lightning_retina.data.collate import collate_detection
from lightning_retina.module import RetinaNetModule
from lightning_retina.viz import TRUE_COLOR, draw_detections
from tests.conftest import random_targets

SIZE = 64
NAMES = ("cat", "dog", "cow")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _module(**kwargs) -> RetinaNetModule:
    torch.manual_seed(0)
    # score_thresh 0: an untrained head scores ~0.01 (prior), and the PR curve needs detections
    defaults = dict(num_classes=3, class_names=NAMES, backbone="resnet18", min_size=SIZE, max_size=SIZE,
                    anchor_sizes=(8, 16, 32, 64, 128), score_thresh=0.0, detections_per_img=20)  # fmt: skip
    return RetinaNetModule(**{**defaults, **kwargs})


def _loader(num_images: int = 5) -> DataLoader:
    generator = torch.Generator().manual_seed(1)
    targets = random_targets(num_images, SIZE, len(NAMES), 3, generator, empty=(2,))
    samples = [(torch.rand(3, SIZE, SIZE, generator=generator), t) for t in targets]
    return DataLoader(samples, batch_size=2, collate_fn=collate_detection)


def _trainer(logger, callbacks, **kwargs) -> Trainer:
    return Trainer(accelerator="cpu", logger=logger, callbacks=callbacks, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, **kwargs)  # fmt: skip


def test_images_reach_tensorboard_with_ground_truth_drawn(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, name="tb")
    _trainer(logger, [EvaluationImages(num_images=3)]).validate(_module(), _loader())
    logger.experiment.flush()
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == ["val/images/0", "val/images/1", "val/images/2"]
    images = [image for batch in _loader() for image in zip(*batch)]
    for i, (image, target) in enumerate(images[:3]):
        (event,) = events.Images(f"val/images/{i}")
        pixels = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))
        # the untrained model scores below the drawing threshold: the picture is the image with its ground truth
        no_detections = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0)}
        expected = draw_detections(image, no_detections, NAMES, target).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(pixels, expected)
        assert (pixels == np.array(TRUE_COLOR)).all(axis=2).any() == (len(target["boxes"]) > 0)


def test_csv_logger_gets_no_images_and_nothing_fails(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, name="csv")
    callback = EvaluationImages(num_images=2)
    _trainer(logger, [callback]).validate(_module(), _loader())
    assert len(callback.images) == 2 and callback.images[0].dtype == torch.uint8  # drawn, but nowhere to send them
    assert not log_images(logger, "val/images", callback.images, 0)
    written = sorted(p.name for p in Path(logger.log_dir).rglob("*") if p.is_file())
    assert written == ["hparams.yaml", "metrics.csv"]


def _check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()


def test_plots_after_test_and_validate_never_overwrite(tmp_path: Path) -> None:
    callback = EvaluationPlots()
    trainer = _trainer(CSVLogger(tmp_path, name="csv"), [callback])
    module = _module(class_metrics=True)
    trainer.test(module, _loader())
    log_dir = Path(trainer.log_dir)
    assert callback.paths == [log_dir / "test_pr_curve.png", log_dir / "test_confusion_matrix.png"]
    trainer.validate(module, _loader())
    trainer.test(module, _loader())
    assert [p.name for p in callback.paths[2:]] == [
        "val_pr_curve.png", "val_confusion_matrix.png", "test_pr_curve-1.png", "test_confusion_matrix-1.png",
    ]  # fmt: skip
    for path in callback.paths:
        _check_png(path)
    # per-class AP is logged by class name for every class with ground truth
    present = {NAMES[label] for _, target in _loader().dataset for label in target["labels"].tolist()}
    assert len(present) >= 2
    assert {k for k in trainer.callback_metrics if "map_per_class" in k} == {f"test/map_per_class/{n}" for n in present}


def test_no_plots_during_fit(tmp_path: Path) -> None:
    callback = EvaluationPlots()
    trainer = _trainer(CSVLogger(tmp_path, name="csv"), [callback], max_steps=1, limit_val_batches=1,
                       num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(_module(), _loader(), _loader())
    assert callback.paths == [] and not list(Path(trainer.log_dir).glob("*.png"))


@pytest.mark.parametrize("command", ["test", "validate"])
def test_cli_writes_the_plots(tmp_path: Path, command: str, capsys: pytest.CaptureFixture) -> None:
    config = Path(__file__).parents[1] / "examples" / "configs" / "shapes.yaml"
    argv = [command, "--config", str(config), "--trainer.precision", "32-true", "--trainer.accelerator", "cpu",
            "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.logger", "CSVLogger",
            "--trainer.logger.save_dir", str(tmp_path / "run"), "--model.min_size", "64", "--model.max_size", "64",
            "--model.channels_last", "false", "--data.root", str(tmp_path / "shapes"),
            "--data.shapes_num_train", "2", "--data.shapes_num_val", "2", "--data.shapes_image_size", "64",
            "--data.num_workers", "0", "--data.batch_size", "2"]  # fmt: skip
    assert main(argv) == 0
    stage = "test" if command == "test" else "val"
    written = sorted(p.name for p in (tmp_path / "run").rglob("*.png"))
    assert written == [f"{stage}_confusion_matrix.png", f"{stage}_pr_curve.png"]
