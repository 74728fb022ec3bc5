"""Exact resume: N steps with ALWA, checkpoint, resume to 2N == an uninterrupted 2N run (CPU, deterministic).

Exactness needs the same batches in the same order after the resume. Lightning restores neither the global RNG
(random flips) nor a plain ``DataLoader``'s shuffle generator, so the exact-resume test trains without flips on a
fixed-order loader; ``test_datamodule_shuffle_survives_resume`` shows what the DataModule's shuffle does today.
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
