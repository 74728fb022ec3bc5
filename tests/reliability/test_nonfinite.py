"""NaN/Inf guard in a real run with ALWA: good steps first, then a non-finite loss at a chosen step.

``tests/test_module.py`` covers a model that is NaN from step 0; here the bad step comes after ALWA has changed
the weights and after AdamW has momentum, which is when a half-skipped step would move the weights.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from torch import Tensor
from torch.utils.data import Dataset

from lightning_retina import RetinaNetModule
from lightning_retina.callbacks import ALWA
from tests.reliability.conftest import ALWA_KWARGS, STEPS_PER_EPOCH, fixed_order_loader, quiet_trainer, tiny_module


class NonFiniteAt(RetinaNetModule):
    """Its training losses are ``loss_cls = NaN`` and ``loss_reg = +inf`` at the training steps in ``bad_steps``.

    Steps are counted by ``compute_losses`` calls (0-based), which ``training_step`` makes once per batch.
    """

    bad_steps: frozenset[int] = frozenset()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def compute_losses(self, images, targets) -> dict[str, Tensor]:
        losses = super().compute_losses(images, targets)
        if self.calls in self.bad_steps:
            losses = {"loss_cls": losses["loss_cls"] * math.nan, "loss_reg": losses["loss_reg"] * math.inf}
        self.calls += 1
        return losses


class Snapshots(Callback):
    """Copies of the parameters before and after each training batch, and the loss weights after it."""

    def __init__(self) -> None:
        self.before: list[dict[str, Tensor]] = []
        self.after: list[dict[str, Tensor]] = []
        self.loss_weights: list[dict[str, float]] = []

    @staticmethod
    def _copy(module: RetinaNetModule) -> dict[str, Tensor]:
        return {name: p.detach().clone() for name, p in module.named_parameters()}

    def on_train_batch_start(self, trainer: Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.before.append(self._copy(pl_module))

    def on_train_batch_end(self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.after.append(self._copy(pl_module))
        self.loss_weights.append(dict(pl_module.loss_weights))


def _equal(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return all(torch.equal(a[name], b[name]) for name in a)


def _run(dataset: Dataset, bad_steps: set[int], max_steps: int, interval: int = 2, **module_kwargs: Any):
    module = tiny_module(cls=NonFiniteAt, **module_kwargs)
    module.bad_steps = frozenset(bad_steps)
    alwa, snapshots = ALWA(**{**ALWA_KWARGS, "interval": interval}), Snapshots()
    trainer = quiet_trainer(max_steps=max_steps, callbacks=[alwa, snapshots])
    return module, alwa, snapshots, trainer, fixed_order_loader(dataset)


K = 3  # ALWA has set w_cls after step 2; step 3 is batch 0 of the second epoch


def test_nonfinite_loss_stops_at_that_step_naming_step_components_and_alwa_weights(shapes_train) -> None:
    module, alwa, snapshots, trainer, loader = _run(shapes_train, {K}, max_steps=10)
    with pytest.raises(FloatingPointError) as info:
        trainer.fit(module, loader)
    message = str(info.value)
    assert f"at global step {K} (batch {K % STEPS_PER_EPOCH})" in message
    assert "loss_cls=nan" in message and "loss_reg=inf" in message
    w_cls = alwa.weights["loss_cls"]
    assert w_cls < 1.0  # ALWA has acted, so the weights in the message are its weights, not the initial 1:1
    assert f"'loss_cls': {w_cls!r}" in message and "'loss_reg': 1.0" in message
    # stopped at that step: K good steps, nothing applied from the bad one, every parameter finite
    assert trainer.global_step == K and len(snapshots.before) == K + 1 and len(snapshots.after) == K
    final = Snapshots._copy(module)
    assert _equal(final, snapshots.before[K])
    assert all(torch.isfinite(p).all() for p in final.values())


def test_skip_nonfinite_skips_counts_and_keeps_alwa_finite(shapes_train) -> None:
    # A skipped step still counts as an optimizer step, so with interval 3 each window keeps 2 recorded losses
    # (a window of 1 has no sample std and would be dropped with a warning of its own).
    bad = {2, 4}
    module, alwa, snapshots, trainer, loader = _run(shapes_train, bad, max_steps=7, interval=3, skip_nonfinite=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, loader)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    skipped = [m for m in messages if "skipping the step" in m]
    assert len(skipped) == 2 and "(1 skipped so far)" in skipped[0] and "(2 skipped so far)" in skipped[1]
    assert "loss_cls=nan, loss_reg=inf" in skipped[0]
    assert module.skipped_steps == 2
    assert trainer.callback_metrics["train/skipped_steps"].item() == 2
    # the skipped steps never reached ALWA's window: no window was dropped, and every weight stays finite
    assert not [m for m in messages if "non-finite window statistics" in m]
    seen = [w["loss_cls"] for w in snapshots.loss_weights]
    assert all(math.isfinite(w) and alwa.min_weight <= w <= 1.0 for w in seen)
    assert alwa.weights["loss_cls"] < 1.0 and module.loss_weights["loss_cls"] == alwa.weights["loss_cls"]
    # a skipped step leaves the weights untouched (AdamW has momentum by then); the others train them
    steps = len(snapshots.after)
    for step in range(steps):
        unchanged = _equal(snapshots.after[step], snapshots.before[step])
        assert unchanged == (step in bad), f"step {step}"
    assert all(torch.isfinite(p).all() for p in snapshots.after[-1].values())


def test_skip_nonfinite_stops_after_max_consecutive_skips(shapes_train) -> None:
    """Three skipped steps in a row stop the run (the count, step, batch and losses named); two do not."""
    module, _, snapshots, trainer, loader = _run(
        shapes_train, {1, 2, 4, 5, 6}, max_steps=10, skip_nonfinite=True, max_consecutive_skips=3
    )
    with pytest.warns(RuntimeWarning, match="skipping the step"), pytest.raises(FloatingPointError) as info:
        trainer.fit(module, loader)
    message = str(info.value)
    assert message.startswith("3 training steps in a row had a non-finite loss (max_consecutive_skips=3)")
    assert f"at global step {trainer.global_step} (batch {6 % STEPS_PER_EPOCH}): loss_cls=nan, loss_reg=inf" in message
    # steps 1-2 were skipped, step 3 was good and reset the count; it ran out at step 6, the fifth skip
    assert module.calls == 7 and module.skipped_steps == 5 and module.consecutive_skips == 3
    assert len(snapshots.after) == 6  # the batch that stopped the run never ended


@pytest.mark.parametrize("value", [0, -1, 2.0, True])
def test_max_consecutive_skips_must_be_a_positive_int(value) -> None:
    with pytest.raises(ValueError, match=f"max_consecutive_skips must be an int >= 1, got {value!r}"):
        tiny_module(max_consecutive_skips=value)
