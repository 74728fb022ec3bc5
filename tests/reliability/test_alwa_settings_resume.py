"""ALWA resumed with other settings than the checkpoint's: the weights are restored, the window starts anew.

Before, the callback's state key held ``interval``, ``statistic`` and ``record``: a resume with another interval
found no state, kept the start weight 1.0 (writing it over the module's restored weight) with only Lightning's
generic "callbacks missing" warning.
"""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback

from lightning_retina.callbacks import ALWA
from tests.reliability.conftest import (
    ALWA_KWARGS,
    EPOCHS,
    STEPS_PER_EPOCH,
    ALWARun,
    fixed_order_loader,
    quiet_trainer,
    tiny_module,
)


class AtStart(Callback):
    """Records the weights ``alwa`` and the module hold when training (re)starts (listed after ``alwa``)."""

    def __init__(self, alwa: ALWA) -> None:
        self.alwa = alwa

    def on_train_start(self, trainer, pl_module) -> None:
        self.state = (self.alwa.weights, dict(pl_module.loss_weights), self.alwa.state_dict())


def resume(alwa: ALWA, alwa_run: ALWARun, tmp_path) -> tuple:
    """Resume the run's step-3 checkpoint (mid-window) with ``alwa``; what it held when training restarted."""
    at_start = AtStart(alwa)
    trainer = quiet_trainer(max_epochs=EPOCHS, callbacks=[alwa, at_start], default_root_dir=tmp_path)
    checkpoint = alwa_run.checkpoints[STEPS_PER_EPOCH]
    trainer.fit(tiny_module(seed=1), fixed_order_loader(alwa_run.dataset), ckpt_path=checkpoint)
    return at_start.state


@pytest.mark.parametrize("changed", [{"interval": 5}, {"record": "weighted"}, {"statistic": "std"}])
def test_resume_with_other_settings_restores_weights(alwa_run: ALWARun, tmp_path, changed) -> None:
    saved = torch.load(alwa_run.checkpoints[STEPS_PER_EPOCH], weights_only=True)["callbacks"][alwa_run.alwa.state_key]
    w_cls = saved["weights"]["loss_cls"]
    assert w_cls < 1.0 and saved["window_steps"] == 1  # a weight to lose and a half window to drop

    alwa = ALWA(**{**ALWA_KWARGS, **changed})
    assert alwa.state_key == alwa_run.alwa.state_key
    expected = rf"ALWA: the checkpoint was written with .*restoring the weights .*{w_cls}"
    with pytest.warns(RuntimeWarning, match=expected):
        weights, module_weights, state = resume(alwa, alwa_run, tmp_path)
    assert weights == {"loss_cls": w_cls}
    assert module_weights == {"loss_cls": w_cls, "loss_reg": 1.0}
    assert state["window_steps"] == 0 and state["histories"]["loss_cls"].numel() == 0
    assert state["recorded_at"] == STEPS_PER_EPOCH


def test_resume_with_same_settings_keeps_the_window(alwa_run: ALWARun, tmp_path) -> None:
    weights, _, state = resume(ALWA(**ALWA_KWARGS), alwa_run, tmp_path)
    saved = torch.load(alwa_run.checkpoints[STEPS_PER_EPOCH], weights_only=True)["callbacks"]
    saved = saved[alwa_run.alwa.state_key]
    assert weights == saved["weights"]
    assert state["window_steps"] == 1 and torch.equal(state["histories"]["loss_cls"], saved["histories"]["loss_cls"])
