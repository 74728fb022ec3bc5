"""Long run (``-m slow``, run by ``.ci/run``): 300 steps on shapes with ALWA learn, with no non-finite warning."""

from __future__ import annotations

import statistics
import warnings
from pathlib import Path

import pytest

from lightning_retina.callbacks import ALWA
from tests.reliability.conftest import RawLosses, quiet_trainer, shapes_datamodule, tiny_module

STEPS = 300
WINDOW = 50
IMAGE_SIZE = 96


@pytest.mark.slow
def test_300_steps_with_alwa_reduce_the_loss_without_nonfinite_warnings(tmp_path: Path) -> None:
    dm = shapes_datamodule(tmp_path / "shapes", num_train=64, num_val=1, batch_size=4, shapes_image_size=IMAGE_SIZE,
                           train_flip=True)  # fmt: skip
    module = tiny_module(min_size=IMAGE_SIZE, max_size=IMAGE_SIZE, warmup_steps=20, skip_nonfinite=True)
    losses, alwa = RawLosses(), ALWA(interval=25)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_trainer(max_steps=STEPS, callbacks=[alwa, losses]).fit(module, datamodule=dm)

    nonfinite = [str(w.message) for w in caught if "non-finite" in str(w.message).lower()]
    assert not nonfinite, nonfinite[:3]
    assert module.skipped_steps == 0 and len(losses.steps) == STEPS
    # raw (unweighted) losses: ALWA lowering w_cls must not count as learning
    total = [step["loss_cls"] + step["loss_reg"] for step in losses.steps]
    first, last = statistics.mean(total[:WINDOW]), statistics.mean(total[-WINDOW:])
    # Measured last/first: 0.691 with the global-RNG augmentation of earlier versions, 0.711 with per-sample seeds
    # (the same training, other flips). A model that does not learn stays near 1.
    assert last < 0.8 * first, (first, last)
    assert 0.0 < alwa.weights["loss_cls"] <= 1.0
