"""ALWA callback states from checkpoints of this and earlier releases: the cases of category ``alwa``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .harness import Case, Ctx


# ------------------------------------------------------------------------------------------- ALWA state dicts
def alwa_cases() -> list[Case]:
    def load(state_key_settings: dict | None, state: dict, **alwa_kwargs):
        def act(d: Path, ctx: Ctx) -> Any:
            from lightning_retina.callbacks import ALWA

            alwa = ALWA(**alwa_kwargs)
            checkpoint = {"callbacks": {}}
            key = alwa.state_key if state_key_settings is None else "ALWA" + repr(
                {**state_key_settings, "groups": alwa.groups})
            checkpoint["callbacks"][key] = state
            alwa.on_load_checkpoint(None, None, checkpoint)
            alwa.load_state_dict(checkpoint["callbacks"].get(alwa.state_key, {}))
            return alwa
        return act

    import_torch = __import__("torch")
    hist = {"loss_cls": import_torch.tensor([1.0]), "loss_reg": import_torch.tensor([0.5])}

    def weight_is(value):
        return lambda r, c, w: None if abs(r.weights["loss_cls"] - value) < 1e-9 else f"w_cls {r.weights}"

    old = {"interval": 2, "statistic": "mean+std", "record": "raw"}
    return [
        Case("alwa", "current state, other interval", "work", "weights restored (0.011), new window",
             lambda d: {}, load(None, {"weights": {"loss_cls": 0.011}, "histories": hist, "window_steps": 1,
                                      "recorded_at": 5, "settings": {**old, "interval": 2}},
                                interval=3, statistic="mean+std", record="raw"), (), weight_is(0.011)),
        Case("alwa", "old key (settings in the key), same settings", "work", "weights restored from the old key",
             lambda d: {}, load(old, {"weights": {"loss_cls": 0.25}, "histories": hist, "window_steps": 1,
                                     "recorded_at": 5}, **old), (), weight_is(0.25)),
        Case("alwa", "old key, other interval", "work", "weights restored from the old key, new window",
             lambda d: {}, load(old, {"weights": {"loss_cls": 0.25}, "histories": hist, "window_steps": 1,
                                     "recorded_at": 5}, **{**old, "interval": 4}), (), weight_is(0.25)),
        Case("alwa", "first-release state (last_update_step)", "work", "weights restored",
             lambda d: {}, load(old, {"weights": {"loss_cls": 0.5}, "histories": hist, "last_update_step": 4},
                                **old), (), weight_is(0.5)),
    ]
