"""TimeBudgetLR is the only owner of the learning rate: it refuses a module that also schedules it."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader

from lightning_retina.callbacks import TimeBudgetLR
from lightning_retina.optim import optimizer_and_schedule


class _Tiny(LightningModule):
    def __init__(self, lr_schedule: str, warmup_steps: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.lr_schedule, self.warmup_steps = lr_schedule, warmup_steps
        self.lrs: list[float] = []

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        return self.layer(batch).pow(2).mean()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(torch.randn(8, 2), batch_size=2)

    def configure_optimizers(self):
        return optimizer_and_schedule(
            self.parameters(), "sgd", 0.1, 0.9, 0.0, self.warmup_steps, 0.5, self.lr_schedule, (), 0.1, 0
        )


def _fit(module: _Tiny, callback: TimeBudgetLR) -> None:
    trainer = Trainer(
        accelerator="cpu", max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[callback],
    )  # fmt: skip
    trainer.fit(module)


def test_constant_schedule_without_warmup_configures_no_scheduler() -> None:
    params = [torch.nn.Parameter(torch.zeros(1))]
    assert set(optimizer_and_schedule(params, "sgd", 0.1, 0.9, 0.0, 0, 1.0, "constant", (), 0.1, 0)) == {"optimizer"}
    with_warmup = optimizer_and_schedule(params, "sgd", 0.1, 0.9, 0.0, 5, 0.5, "constant", (), 0.1, 0)
    assert "lr_scheduler" in with_warmup


def test_sets_the_lr_alone_with_its_warmup() -> None:
    module = _Tiny("constant", warmup_steps=0)
    callback = TimeBudgetLR(3600.0, warmup_steps=4)
    _fit(module, callback)
    # a one-hour budget barely moves the cosine in four steps: the lr is the warm-up's (step + 1) / 4 of 0.1
    torch.testing.assert_close(module.lrs, [0.1 * (s + 1) / 4 for s in range(4)], rtol=1e-4, atol=0)


def test_refuses_a_module_that_schedules_the_lr_too() -> None:
    with pytest.raises(MisconfigurationException, match="TimeBudgetLR owns the learning rate.*LambdaLR"):
        _fit(_Tiny("cosine", warmup_steps=2), TimeBudgetLR(60.0))
