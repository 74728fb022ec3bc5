"""Exact resume: N steps with ALWA, checkpoint, resume to 2N == an uninterrupted 2N run (CPU, deterministic).

Exactness needs the same batches in the same order after the resume, with the same augmentations. A plain
``DataLoader`` gives neither (Lightning restores no shuffle generator and no global RNG), so the first test trains
without flips on a fixed-order loader. The DataModule's loader does both: its sampler continues the checkpoint's
epoch after the batches already trained on (the position is in the DataModule's checkpoint state) and every image's
augmentation is seeded from (shuffle seed, epoch, index). The last tests resume the DataModule mid-epoch (batch 4
of 6) and at an epoch end, with flips, photometric distortion and scale jitter, with 0 and 1 workers and with
gradient accumulation, and compare with the uninterrupted run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

from lightning_retina.callbacks import ALWA
from tests.reliability.conftest import (
    ALWA_KWARGS,
    EPOCHS,
    STEPS_PER_EPOCH,
    ALWARun,
    fixed_order_loader,
    quiet_trainer,
    shapes_datamodule,
    tiny_module,
)

N = STEPS_PER_EPOCH


def assert_same_tree(actual: Any, expected: Any, where: str = "") -> None:
    """Nested dicts/lists of tensors and numbers are equal: tensors within 1e-6, everything else exactly."""
    if isinstance(expected, Tensor):
        torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0, msg=lambda m: f"{where}: {m}")
    elif isinstance(expected, dict):
        assert set(actual) == set(expected), where
        for key in expected:
            assert_same_tree(actual[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same_tree(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, where


@pytest.fixture(scope="module")
def resumed(alwa_run: ALWARun, tmp_path_factory: pytest.TempPathFactory) -> tuple[LightningModule, Trainer, ALWA]:
    """Resume the step-N checkpoint to 2N, starting from *other* initial weights and a fresh ALWA."""
    module, alwa = tiny_module(seed=1), ALWA(**ALWA_KWARGS)
    trainer = quiet_trainer(max_epochs=EPOCHS, deterministic=True, callbacks=[alwa],
                            default_root_dir=tmp_path_factory.mktemp("resumed"))  # fmt: skip
    trainer.fit(module, fixed_order_loader(alwa_run.dataset), ckpt_path=alwa_run.checkpoints[N])
    return module, trainer, alwa


def test_the_run_exercises_alwa_across_the_checkpoint(alwa_run: ALWARun) -> None:
    """Preconditions: ALWA changed w_cls before the checkpoint, again after it, and the checkpoint is mid-window."""
    state = torch.load(alwa_run.checkpoints[N], weights_only=True)["callbacks"][alwa_run.alwa.state_key]
    at_checkpoint = state["weights"]["loss_cls"]
    assert at_checkpoint < 1.0
    assert alwa_run.alwa.weights["loss_cls"] != at_checkpoint
    assert N % ALWA_KWARGS["interval"] != 0 and len(state["histories"]["loss_cls"]) == N % ALWA_KWARGS["interval"]


def test_resume_matches_uninterrupted_run(alwa_run: ALWARun, resumed) -> None:
    module, trainer, alwa = resumed
    assert trainer.global_step == alwa_run.trainer.global_step == EPOCHS * N
    assert alwa.weights == alwa_run.alwa.weights
    assert module.loss_weights == alwa_run.module.loss_weights
    assert_same_tree(alwa.state_dict(), alwa_run.alwa.state_dict(), "alwa")
    assert_same_tree(module.state_dict(), alwa_run.module.state_dict(), "module")  # parameters and BN buffers
    assert_same_tree(trainer.optimizers[0].state_dict(), alwa_run.trainer.optimizers[0].state_dict(), "optimizer")
    scheduler, reference = trainer.lr_scheduler_configs[0].scheduler, alwa_run.trainer.lr_scheduler_configs[0].scheduler
    assert_same_tree(scheduler.state_dict(), reference.state_dict(), "lr_scheduler")


# ------------------------------------------------------------------------------- the DataModule's own shuffle
class _SeenImages(LightningModule):
    """A one-parameter stand-in: records the image ids of every training batch (cheap, same data path)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.seen: list[list[int]] = []

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        images, targets = batch
        self.seen.append([int(t["image_id"]) for t in targets])
        return self.weight * torch.stack([img.mean() for img in images]).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_datamodule_shuffle_survives_resume(tmp_path: Path) -> None:
    make_dm = lambda: shapes_datamodule(tmp_path / "shapes", num_train=8, num_val=1)  # noqa: E731
    full = _SeenImages()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    quiet_trainer(max_epochs=3, callbacks=[checkpoint], enable_checkpointing=True).fit(full, datamodule=make_dm())
    assert full.seen[:4] != full.seen[4:8]  # shuffled: epochs differ

    again = _SeenImages()
    resume = quiet_trainer(max_epochs=3, default_root_dir=tmp_path)
    resume.fit(again, datamodule=make_dm(), ckpt_path=tmp_path / "ckpt" / "epoch=0.ckpt")
    assert again.seen == full.seen[4:]


# ---------------------------------------------------------------------------- exact resume from anywhere
MID_STEPS_PER_EPOCH = 6  # 12 images, batch 2
MID_STEP = 4  # the checkpoint is written after the 4th of the 6 batches of epoch 0
AUGMENT = dict(train_flip=True, photometric=True, scale_jitter=(0.7, 1.3))


class _SeenBatches(LightningModule):
    """A one-parameter stand-in recording what it trains on: image ids, the (augmented) boxes and a pixel checksum.

    The boxes change with a flip or a zoom and the checksum with the photometric distortion, so two runs that
    record the same saw the same batches with the same augmentation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.seen: list[list[tuple[int, list[list[float]], float]]] = []

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        images, targets = batch
        ramp = lambda img: torch.arange(img.numel(), dtype=torch.float64).reshape(img.shape)  # noqa: E731
        self.seen.append(
            [(int(t["image_id"]), t["boxes"].tolist(), float((img.double() * ramp(img)).sum()))
             for img, t in zip(images, targets)]
        )  # fmt: skip
        return self.weight * torch.stack([img.mean() for img in images]).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.fixture(scope="module")
def shapes12(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes12")
    shapes_datamodule(root, num_train=2 * MID_STEPS_PER_EPOCH, num_val=1).prepare_data()
    return root


@pytest.mark.parametrize("num_workers", [0, 1])
@pytest.mark.parametrize(("where", "checkpoint_kwargs"), [
    ("mid-epoch", dict(every_n_train_steps=MID_STEP)),
    ("epoch end", dict(every_n_epochs=1)),
    ("after fit", None),  # Trainer.save_checkpoint after a 1-epoch fit, resumed with more epochs
])  # fmt: skip
def test_datamodule_resume_sees_the_same_batches_and_augmentations(
    shapes12: Path, tmp_path: Path, num_workers: int, where: str, checkpoint_kwargs: dict[str, int] | None
) -> None:
    make_dm = lambda: shapes_datamodule(shapes12, 2 * MID_STEPS_PER_EPOCH, 1, num_workers=num_workers,  # noqa: E731
                                        persistent_workers=False, **AUGMENT)  # fmt: skip
    full = _SeenBatches()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{step}", save_top_k=-1, **checkpoint_kwargs or {})
    quiet_trainer(max_epochs=3, callbacks=[checkpoint], enable_checkpointing=True).fit(full, datamodule=make_dm())
    assert len(full.seen) == 3 * MID_STEPS_PER_EPOCH
    assert full.seen[:MID_STEPS_PER_EPOCH] != full.seen[MID_STEPS_PER_EPOCH:2 * MID_STEPS_PER_EPOCH]
    step = MID_STEP if where == "mid-epoch" else MID_STEPS_PER_EPOCH
    if checkpoint_kwargs is None:
        first = quiet_trainer(max_epochs=1)
        first.fit(_SeenBatches(), datamodule=make_dm())
        first.save_checkpoint(tmp_path / "ckpt" / f"step={step}.ckpt")

    again = _SeenBatches()
    resume = quiet_trainer(max_epochs=3, default_root_dir=tmp_path)
    resume.fit(again, datamodule=make_dm(), ckpt_path=tmp_path / "ckpt" / f"step={step}.ckpt")
    assert again.seen == full.seen[step:]


@pytest.mark.parametrize(("variant", "trainer_kwargs", "dm_kwargs", "checkpoint_step"), [
    ("flips", {}, {}, MID_STEP),
    ("accumulate 2", dict(accumulate_grad_batches=2), {}, MID_STEP // 2),  # optimizer step 2 = batch 4
    ("1 worker", {}, dict(num_workers=1, persistent_workers=True), MID_STEP),
])  # fmt: skip
def test_mid_epoch_resume_matches_uninterrupted_run(
    shapes12: Path, tmp_path: Path, variant: str, trainer_kwargs: dict, dm_kwargs: dict, checkpoint_step: int
) -> None:
    """The real model with ALWA and the default flips: checkpoint after batch 4 of 6, crash, resume to the epoch's end.

    Before, the resumed epoch replayed its first batches (max parameter difference 0.855) and the flips came from
    the global RNG. Parameters, buffers, ALWA and optimizer state must equal the uninterrupted run's exactly.
    """
    make_dm = lambda: shapes_datamodule(shapes12, 2 * MID_STEPS_PER_EPOCH, 1, train_flip=True,  # noqa: E731
                                        **dm_kwargs)  # fmt: skip
    run = lambda module, alwa, **kw: quiet_trainer(  # noqa: E731
        max_epochs=1, deterministic=True, callbacks=[alwa, *kw.pop("callbacks", [])], **trainer_kwargs, **kw
    )

    full_module, full_alwa = tiny_module(), ALWA(**ALWA_KWARGS)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{step}", save_top_k=-1,
                                 every_n_train_steps=checkpoint_step)  # fmt: skip
    full = run(full_module, full_alwa, callbacks=[checkpoint], enable_checkpointing=True)
    full.fit(full_module, datamodule=make_dm())
    path = tmp_path / "ckpt" / f"step={checkpoint_step}.ckpt"
    saved = torch.load(path, weights_only=True)
    assert saved["DetectionDataModule"] == {"train_position": {"epoch": 0, "batches_done": MID_STEP}}
    assert saved["callbacks"][full_alwa.state_key]["weights"]["loss_cls"] < 1.0  # ALWA acted before the crash

    module, alwa = tiny_module(seed=1), ALWA(**ALWA_KWARGS)
    resumed = run(module, alwa, default_root_dir=tmp_path / "resumed")
    resumed.fit(module, datamodule=make_dm(), ckpt_path=path)
    assert resumed.global_step == full.global_step
    assert alwa.weights == full_alwa.weights and module.loss_weights == full_module.loss_weights
    assert_same_tree(alwa.state_dict(), full_alwa.state_dict(), "alwa")
    for name, value in full_module.state_dict().items():
        assert torch.equal(module.state_dict()[name], value), name
    assert_same_tree(resumed.optimizers[0].state_dict(), full.optimizers[0].state_dict(), "optimizer")
