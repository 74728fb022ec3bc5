"""ALWA reads the checkpoint state of earlier releases.

Until the settings-change resume work, the state key held ``interval``, ``statistic`` and ``record`` as well as the
groups (``ALWA{'interval': 2, 'statistic': 'mean+std', 'record': 'raw', 'groups': (('loss_cls', 'loss_reg'),)}``)
and the state had no ``"settings"``; the first release saved ``"last_update_step"`` instead of ``"window_steps"`` /
``"recorded_at"``. A checkpoint written then was no longer read: the callback found nothing under its groups-only
key and trained on from weight 1.0.
"""

from __future__ import annotations

import pytest
import torch

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

OLD_SETTINGS = {"interval": 2, "statistic": "mean+std", "record": "raw"}
GROUPS = (("loss_cls", "loss_reg"),)


def old_key(settings: dict = OLD_SETTINGS, groups: tuple = GROUPS) -> str:
    """The state key as ``Callback._generate_state_key`` wrote it before (settings and groups)."""
    return "ALWA" + repr({**settings, "groups": groups})


def second_release_state() -> dict:
    """A hand-written state as the releases between the first and the settings-change work saved it."""
    return {
        "weights": {"loss_cls": 0.25},
        "histories": {"loss_cls": torch.tensor([0.9]), "loss_reg": torch.tensor([0.4])},
        "window_steps": 1,
        "recorded_at": 7,
    }


def restore(alwa: ALWA, checkpoint: dict) -> None:
    """What Lightning does on resume: every callback's ``on_load_checkpoint``, then ``load_state_dict`` by key."""
    alwa.on_load_checkpoint(None, None, checkpoint)  # type: ignore[arg-type]
    state = checkpoint["callbacks"].get(alwa.state_key)
    if state:
        alwa.load_state_dict(state)


def test_old_key_same_settings_restores_weights_and_window() -> None:
    alwa = ALWA(**OLD_SETTINGS)
    restore(alwa, {"callbacks": {old_key(): second_release_state()}})
    assert alwa.weights == {"loss_cls": 0.25}
    state = alwa.state_dict()
    assert state["window_steps"] == 1 and state["recorded_at"] == 7
    assert state["histories"]["loss_cls"].tolist() == pytest.approx([0.9])


def test_old_key_other_interval_restores_weights_and_starts_a_new_window() -> None:
    alwa = ALWA(**{**OLD_SETTINGS, "interval": 5})
    with pytest.warns(RuntimeWarning, match=r"'interval': 2.*'interval': 5.*restoring the weights"):
        restore(alwa, {"callbacks": {old_key(): second_release_state()}})
    assert alwa.weights == {"loss_cls": 0.25}
    assert alwa.state_dict()["window_steps"] == 0


def test_first_release_state_with_last_update_step() -> None:
    alwa = ALWA(**OLD_SETTINGS)
    first = {"weights": {"loss_cls": 0.5}, "histories": {"loss_cls": torch.tensor([1.0]),
                                                         "loss_reg": torch.tensor([0.5])}, "last_update_step": 4}
    restore(alwa, {"callbacks": {old_key(): first}})
    assert alwa.weights == {"loss_cls": 0.5}
    state = alwa.state_dict()
    assert state["window_steps"] == 1 and state["recorded_at"] is None  # one recorded step in the open window


def test_old_key_of_other_groups_is_not_taken() -> None:
    alwa = ALWA(**OLD_SETTINGS, groups=[("loss_a", "loss_b")])
    checkpoint = {"callbacks": {old_key(): second_release_state(), "ALWA{not a dict": {}}}
    restore(alwa, checkpoint)
    assert alwa.weights == {"loss_a": 1.0}
    assert set(checkpoint["callbacks"]) == {old_key(), "ALWA{not a dict"}


def test_a_fit_checkpoint_rewritten_to_the_old_key_resumes_with_its_weights(alwa_run: ALWARun, tmp_path) -> None:
    checkpoint = torch.load(alwa_run.checkpoints[STEPS_PER_EPOCH], weights_only=True)
    state = checkpoint["callbacks"].pop(alwa_run.alwa.state_key)
    state.pop("settings")
    checkpoint["callbacks"][old_key(ALWA_KWARGS)] = state
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)

    alwa = ALWA(**ALWA_KWARGS)
    trainer = quiet_trainer(max_epochs=EPOCHS, callbacks=[alwa], default_root_dir=tmp_path)
    trainer.fit(tiny_module(seed=1), fixed_order_loader(alwa_run.dataset), ckpt_path=old)
    assert alwa.weights == alwa_run.alwa.weights  # the same run to the end: the same weight as uninterrupted
