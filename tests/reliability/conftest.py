"""Shared pieces of the reliability suite: a tiny RetinaNet, a quiet Trainer, shapes data and one ALWA run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from lightning_retina import RetinaNetModule
from lightning_retina.callbacks import ALWA
from lightning_retina.data import DetectionDataModule
from lightning_retina.data.collate import collate_detection

SIZE = 64
TINY = dict(
    num_classes=4, backbone="resnet18", min_size=SIZE, max_size=SIZE, anchor_sizes=(8, 16, 32, 64, 128),
    head_norm="group", reg_loss="giou", optimizer="adamw", lr=1e-3, warmup_steps=2, lr_schedule="constant",
    metric=None,
)  # fmt: skip
# With GIoU the classification loss of a fresh model is larger than the box loss, so ALWA's "mean+std" rule on
# the raw losses sets a new w_cls < 1 at every window: the ALWA state a test compares is never the trivial 1.0.
ALWA_KWARGS = dict(interval=2, statistic="mean+std", record="raw")


def tiny_module(seed: int = 0, cls: type[RetinaNetModule] = RetinaNetModule, **overrides: Any) -> RetinaNetModule:
    """ResNet-18 RetinaNet on 64-px images (4 shapes classes), its weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return cls(**{**TINY, **overrides})


def quiet_trainer(**kwargs: Any) -> Trainer:
    """A CPU ``Trainer`` without logger, progress bar, summary, checkpoints or validation (unless overridden)."""
    defaults = dict(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    return Trainer(**{**defaults, **kwargs})


def shapes_datamodule(root: Path, num_train: int, num_val: int, **kwargs: Any) -> DetectionDataModule:
    """The shapes set (COCO layout, 64 px, no flips) as a DataModule, written under ``root`` when missing.

    ``root`` is passed as a ``str``: a ``Path`` lands in the checkpoint's hyper-parameters as a ``PosixPath``,
    which ``torch.load(weights_only=True)`` refuses (see ``test_checkpoint_safety``).
    """
    defaults = dict(batch_size=2, eval_batch_size=1, num_workers=0, shapes_image_size=SIZE, train_flip=False)
    return DetectionDataModule(
        "shapes", str(root), shapes_num_train=num_train, shapes_num_val=num_val, **{**defaults, **kwargs}
    )


def fixed_order_loader(dataset: Dataset, batch_size: int = 2) -> DataLoader:
    """Unshuffled training batches: the same order in every epoch and after every resume."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0, collate_fn=collate_detection)


def train_dataset(root: Path, num_train: int) -> Dataset:
    """The shapes training split written (once) under ``root``."""
    dm = shapes_datamodule(root, num_train, num_val=1)
    dm.prepare_data()
    dm.setup("fit")
    return dm.datasets["train"]


class RawLosses(Callback):
    """Records the raw ``loss_cls`` and ``loss_reg`` of every training step that was not skipped."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if outputs:
            self.steps.append({k: float(outputs[k]) for k in ("loss_cls", "loss_reg")})


# ------------------------------------------------------------------------------------- one ALWA training run
STEPS_PER_EPOCH = 3  # 6 images, batch 2
EPOCHS = 2


@dataclass
class ALWARun:
    """An uninterrupted 2-epoch run with ALWA and the checkpoints ``ModelCheckpoint`` wrote after each epoch."""

    module: RetinaNetModule
    trainer: Trainer
    alwa: ALWA
    checkpoints: dict[int, Path]  # global step -> file
    dataset: Dataset


@pytest.fixture(scope="session")
def shapes_train(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Six shapes training images: 3 batches of 2."""
    return train_dataset(tmp_path_factory.mktemp("shapes"), num_train=2 * STEPS_PER_EPOCH)


@pytest.fixture(scope="session")
def alwa_run(tmp_path_factory: pytest.TempPathFactory, shapes_train: Dataset) -> ALWARun:
    """6 steps (interval 2: ALWA updates after steps 2, 4, 6; the step-3 checkpoint holds a half window)."""
    tmp, dataset = tmp_path_factory.mktemp("alwa_run"), shapes_train
    module, alwa = tiny_module(), ALWA(**ALWA_KWARGS)
    checkpoint = ModelCheckpoint(dirpath=tmp / "ckpt", filename="{step}", save_top_k=-1, every_n_epochs=1)
    trainer = quiet_trainer(
        max_epochs=EPOCHS, deterministic=True, callbacks=[alwa, checkpoint], enable_checkpointing=True
    )
    trainer.fit(module, fixed_order_loader(dataset))
    checkpoints = {step: tmp / "ckpt" / f"step={step}.ckpt" for step in (STEPS_PER_EPOCH, EPOCHS * STEPS_PER_EPOCH)}
    return ALWARun(module, trainer, alwa, checkpoints, dataset)
