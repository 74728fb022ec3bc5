r"""
ALWA
^^^^

Adaptive Loss Weight Adjustment: lower a detector's classification loss weight when the classification loss
fluctuates more than the regression loss.

"""

import ast
import math
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks.callback import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from torch import Tensor
from typing_extensions import override

from lightning_retina.callbacks._alwa_rule import STATISTICS, alwa_update, window_moments, window_statistic

RECORDS = ("weighted", "raw")


class ALWA(Callback):
    r"""Adaptive Loss Weight Adjustment (ALWA) for any detector that follows the weighted-loss contract.

    The module must have ``loss_weights: dict[str, float]`` and its ``training_step`` must return a dict with
    ``"loss"`` (the weighted sum used for backward) and each *raw* component loss (a scalar) under its own key.

    The rule, per group ``(cls_key, reg_key)``, as in the paper's official code: weights start as the module's
    (1 : 1); every training batch appends both losses to a window; every ``interval`` optimizer steps

    - ``S = std(window)`` (sample std, ddof=1; ``statistic="std"``, the paper's ALWA_2) or
      ``S = mean + std`` (``statistic="mean+std"``, ALWA_1);
    - if ``S_cls > S_reg``: ``w_cls = 1 - (S_cls - S_reg) / S_cls`` (= ``S_reg / S_cls``), otherwise it is kept;
    - ``w_reg`` is never changed; the window is cleared.

    ``w_cls`` is recomputed from each window's statistics, not scaled from the old weight, so it can rise as well as
    fall (with ``record="weighted"`` the window already carries the old weight).

    Beyond the official code: the window is pooled over all DDP ranks, so every rank holds the same weights;
    ``interval`` counts optimizer steps with recorded losses (every micro-batch of gradient accumulation is
    recorded; a step skipped by returning ``None`` from ``training_step`` records nothing and is not counted, so
    every window holds ``interval`` steps); ``w_cls`` stays
    in ``[min_weight, 1]`` and a window with non-finite statistics is dropped with a warning; the state is saved in
    checkpoints and a resumed run continues as an uninterrupted one. Under DDP a checkpoint holds rank 0's part of
    the unfinished window; after a multi-process resume only rank 0 keeps it, so that window is pooled from fewer
    values (the weights themselves are restored exactly).

    Args:
        interval: ``C``, the number of optimizer steps between updates (at least 2).
        statistic: ``"std"`` (ALWA_2, default) or ``"mean+std"`` (ALWA_1).
        record: ``"weighted"`` records each loss times its current weight, as the official code does;
            ``"raw"`` records the losses as returned.
        groups: ``(cls_key, reg_key)`` pairs, each with its own classification weight, e.g. one for the RPN and
            one for the ROI head of a two-stage detector. A group may hold several regression-side terms,
            ``(cls_key, (reg_key_1, reg_key_2, ...))`` (FCOS: ``("classification", ("bbox_regression",
            "bbox_ctrness"))``): they are pooled by summing them step by step (each times its weight with
            ``record="weighted"``) and ``S_reg`` is the statistic of that sum, as if they were one regression loss;
            their weights are never changed. Every key appears once.
        min_weight: lower bound of a classification weight, in ``(0, 1]``.
        log: log ``alwa/<cls_key>_weight`` every step and ``alwa/<cls_key>_stat``, ``alwa/<reg_key>_stat`` at each
            update with ``pl_module.log``.
        start_step: optimizer steps that pass before the first window opens (the weights keep their start values
            until then). ``0`` (default) is the official rule. From a random initialisation the losses of the first
            steps fall because of the initialisation, not because of the balance of the tasks, and that first
            window can fix ``w_cls`` for the whole run; starting after the lr warm-up avoids it.

    Raises:
        MisconfigurationException:
            If an argument is out of range, or in ``setup`` / training when the module does not follow the
            contract (the message names the missing key).

    Reference:
        Wenxin Yu, Xueling Shen, Jiajie Hu, Dong Yin, "Revisiting the Loss Weight Adjustment in Object Detection",
        arXiv:2103.09488, 2021. Official code: https://github.com/ywx-hub/ALWA
        (``mmdet/models/dense_heads/anchor_head.py``).

    Example::

        >>> from lightning.pytorch import Trainer
        >>> from lightning_retina.callbacks import ALWA
        >>> alwa = ALWA(interval=100, groups=[("loss_classifier", "loss_box_reg"),
        ...                                   ("loss_objectness", "loss_rpn_box_reg")])
        >>> trainer = Trainer(callbacks=[alwa])

    .. tip:: Several ALWA callbacks can be saved and restored together if they adjust different *groups*: a
        callback's checkpoint state is found by its groups alone. Resuming with another *interval, statistic* or
        *record* than the checkpoint's restores the weights and starts a new window (with a warning), since the
        saved window was collected under the old settings.

    """

    def __init__(
        self,
        interval: int = 100,
        statistic: str = "std",
        record: str = "weighted",
        groups: Sequence[tuple[str, str | Sequence[str]]] = (("loss_cls", "loss_reg"),),
        min_weight: float = 1e-3,
        log: bool = True,
        start_step: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 2:
            raise MisconfigurationException(f"`interval` must be an int >= 2 (a std needs 2 values), got {interval!r}")
        if statistic not in STATISTICS:
            raise MisconfigurationException(f"`statistic` can be {', '.join(STATISTICS)}, got {statistic!r}")
        if record not in RECORDS:
            raise MisconfigurationException(f"`record` can be {', '.join(RECORDS)}, got {record!r}")
        if not 0.0 < min_weight <= 1.0:
            raise MisconfigurationException(f"`min_weight` must be in (0, 1], got {min_weight!r}")
        if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
            raise MisconfigurationException(f"`start_step` must be an int >= 0, got {start_step!r}")
        self.interval = interval
        self.statistic = statistic
        self.record = record
        self.groups = _validate_groups(groups)
        self._pairs = tuple((cls_key, _reg_keys(reg)) for cls_key, reg in self.groups)
        self.min_weight = float(min_weight)
        self.start_step = start_step
        self._log = log  # not `self.log`: Lightning sets `callback.log = pl_module.log` in fit
        self._keys = [key for cls_key, reg_keys in self._pairs for key in (cls_key, *reg_keys)]
        self._reset({cls_key: 1.0 for cls_key, _ in self.groups})

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(groups=self.groups)

    @property
    def weights(self) -> dict[str, float]:
        """The current classification weight of each group, by cls key."""
        return dict(self._weights)

    def _reset(self, weights: dict[str, float]) -> None:
        self._weights = weights
        self._history: dict[str, list[Tensor]] = {key: [] for key in self._keys}
        # optimizer steps with recorded losses since the last update, and the global step of the last record
        # (None until training starts or a checkpoint sets it)
        self._window_steps = 0
        self._recorded_at: int | None = None
        self._in_window = True

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != TrainerFn.FITTING:
            return
        loss_weights = getattr(pl_module, "loss_weights", None)
        if not isinstance(loss_weights, MutableMapping):
            raise MisconfigurationException(
                f"ALWA needs `{type(pl_module).__name__}.loss_weights`, a dict with the keys {self._keys};"
                f" got {type(loss_weights).__name__}"
            )
        missing = [key for key in self._keys if key not in loss_weights]
        if missing:
            raise MisconfigurationException(
                f"`{type(pl_module).__name__}.loss_weights` lacks the ALWA key(s) {missing};"
                f" it has {list(loss_weights)}"
            )
        self._reset({cls_key: float(loss_weights[cls_key]) for cls_key, _ in self.groups})

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # runs after a checkpoint (callback state and global step) has been restored
        pl_module.loss_weights.update(self._weights)
        if self._recorded_at is None:
            self._recorded_at = trainer.global_step
        if trainer.global_rank != 0:
            # a restored window is rank 0's; keep it once in the pooled statistics
            self._history = {key: [] for key in self._keys}

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        # global_step is the index of the optimizer step this batch contributes to (accumulation included)
        self._in_window = trainer.global_step >= self.start_step

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or not outputs:
            return  # an empty `outputs` is a skipped step: it records nothing and does not count
        if self._in_window:
            self._record(outputs, pl_module.loss_weights)
            if trainer.global_step != self._recorded_at:  # this batch ended an optimizer step
                self._window_steps += 1
                self._recorded_at = trainer.global_step
            if self._window_steps >= self.interval:
                self._update(trainer, pl_module)
        if self._log:
            for cls_key, _ in self.groups:
                pl_module.log(f"alwa/{cls_key}_weight", self._weights[cls_key], prog_bar=False, batch_size=1)

    def _record(self, outputs: Mapping[str, Any], loss_weights: Mapping[str, float]) -> None:
        missing = [key for key in self._keys if key not in outputs]
        if missing:
            raise MisconfigurationException(
                f"ALWA: `training_step` must return the raw loss(es) {missing}; it returned the keys {list(outputs)}"
            )
        for key in self._keys:
            value = torch.as_tensor(outputs[key]).detach()
            if value.numel() != 1:
                raise MisconfigurationException(
                    f"ALWA: `training_step` output {key!r} must be a scalar loss, got shape {tuple(value.shape)}"
                )
            value = value.reshape(()).float()
            self._history[key].append(value * loss_weights[key] if self.record == "weighted" else value)

    def _update(self, trainer: Trainer, pl_module: LightningModule) -> None:
        device = trainer.strategy.root_device if trainer.world_size > 1 else torch.device("cpu")
        windows = [window for cls_key, reg_keys in self._pairs for window in self._group_windows(cls_key, reg_keys)]
        moments = torch.stack([window_moments(values, device) for values in windows])  # [2G, 3]
        moments = trainer.strategy.reduce(moments, reduce_op="sum")
        rows = moments.tolist()
        stats = [window_statistic(*row, statistic=self.statistic) for row in rows]
        for g, (cls_key, reg_keys) in enumerate(self._pairs):
            stat_cls, stat_reg = stats[2 * g], stats[2 * g + 1]
            reg_name = "+".join(reg_keys)
            if math.isfinite(stat_cls) and math.isfinite(stat_reg):
                self._weights[cls_key], _ = alwa_update(self._weights[cls_key], stat_cls, stat_reg, self.min_weight)
                pl_module.loss_weights[cls_key] = self._weights[cls_key]
            else:
                rank_zero_warn(
                    f"ALWA: non-finite window statistics for ({cls_key!r}, {reg_name!r}) at step {trainer.global_step}:"
                    f" S_cls={stat_cls}, S_reg={stat_reg}; keeping {cls_key} weight {self._weights[cls_key]}",
                    category=RuntimeWarning,
                )
            if self._log:
                pl_module.log(f"alwa/{cls_key}_stat", stat_cls, prog_bar=False, batch_size=1)
                pl_module.log(f"alwa/{reg_name}_stat", stat_reg, prog_bar=False, batch_size=1)
        self._history = {key: [] for key in self._keys}
        self._window_steps = 0

    def _group_windows(self, cls_key: str, reg_keys: tuple[str, ...]) -> tuple[list[Tensor], list[Tensor]]:
        """The classification window and the regression-side window (the step-wise sum of the regression terms)."""
        reg = self._history[reg_keys[0]]
        if len(reg_keys) > 1:
            reg = [sum(values) for values in zip(*(self._history[key] for key in reg_keys))]
        return self._history[cls_key], reg

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": dict(self._weights),
            "histories": {key: _stack_cpu(values) for key, values in self._history.items()},
            "window_steps": self._window_steps,
            "recorded_at": self._recorded_at,
            "settings": self._settings(),
        }

    @override
    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        """Read the state a checkpoint from before the groups-only state key holds (see :meth:`load_state_dict`).

        Such a checkpoint keeps the state under ``ALWA{'interval': ..., 'statistic': ..., 'record': ..., 'groups':
        ...}``. When this callback's key is absent and an old key has the same groups, its state is copied to this
        callback's key with the settings read from the old key, so the weights are restored (and the window kept
        when the settings are the same). Lightning's generic "callbacks ... need to be provided" warning, issued
        before this hook, names the old key.
        """
        states = checkpoint.get("callbacks")
        if not isinstance(states, MutableMapping) or self.state_key in states:
            return
        for key, state in list(states.items()):
            settings = self._old_key_settings(key)
            if settings is not None and isinstance(state, Mapping):
                states[self.state_key] = {"settings": settings, **state}
                rank_zero_info(f"ALWA: read the state saved under the earlier state key {key!r}")
                return

    def _old_key_settings(self, key: Any) -> dict[str, Any] | None:
        """``{interval, statistic, record}`` from a state key of the first releases with this callback's groups."""
        if not isinstance(key, str) or not key.startswith(type(self).__qualname__ + "{"):
            return None
        try:
            fields = ast.literal_eval(key[len(type(self).__qualname__) :])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
        if not isinstance(fields, dict) or set(fields) != {"interval", "statistic", "record", "groups"}:
            return None
        try:
            same_groups = _validate_groups(fields["groups"]) == self.groups
        except (MisconfigurationException, TypeError):
            return None
        return {k: fields[k] for k in ("interval", "statistic", "record")} if same_groups else None

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the weights, and the window when it was collected under this callback's settings.

        Also reads the states of earlier releases: without ``"settings"`` (the settings were in the state key, see
        :meth:`on_load_checkpoint`; a state passed here directly is taken to have this callback's settings) and the
        first release's ``"last_update_step"`` instead of ``"window_steps"`` / ``"recorded_at"`` (the window's
        length is then its number of recorded steps).
        """
        self._weights.update({key: float(w) for key, w in state_dict.get("weights", {}).items()})
        self._recorded_at = state_dict.get("recorded_at")
        saved = state_dict.get("settings", self._settings())
        if saved != self._settings():
            rank_zero_warn(
                f"ALWA: the checkpoint was written with {saved}, this callback has {self._settings()}; restoring the"
                f" weights {self._weights} and starting a new window (the saved one was collected under the old"
                " settings).",
                category=RuntimeWarning,
            )
            self._history, self._window_steps = {key: [] for key in self._keys}, 0
            return
        histories = state_dict.get("histories", {})
        self._history = {key: list(torch.as_tensor(histories.get(key, [])).unbind()) for key in self._keys}
        self._window_steps = int(state_dict.get("window_steps", len(self._history[self._keys[0]])))

    def _settings(self) -> dict[str, Any]:
        """What the window depends on, saved with it: ``interval``, ``statistic`` and ``record``."""
        return {"interval": self.interval, "statistic": self.statistic, "record": self.record}


def _reg_keys(reg: str | Sequence[str]) -> tuple[str, ...]:
    """A group's regression side as a tuple of keys (one key, or several pooled by their sum)."""
    return (reg,) if isinstance(reg, str) else tuple(reg)


def _validate_groups(
    groups: Sequence[tuple[str, str | Sequence[str]]],
) -> tuple[tuple[str, str | tuple[str, ...]], ...]:
    """Check the ``(cls_key, reg_key)`` / ``(cls_key, (reg_key, ...))`` groups: non-empty, distinct non-empty
    strings, each key used once. A one-key regression side given as a sequence is kept as a sequence."""
    if isinstance(groups, str) or not groups:
        raise MisconfigurationException(f"`groups` must be a non-empty sequence of (cls_key, reg_key), got {groups!r}")
    pairs = []
    for group in groups:
        if isinstance(group, str) or len(group) != 2:
            raise MisconfigurationException(f"an ALWA group must be a (cls_key, reg_key) pair of names, got {group!r}")
        cls_key, reg = group
        reg_keys = _reg_keys(reg)
        if not reg_keys or not all(isinstance(key, str) and key for key in (cls_key, *reg_keys)):
            raise MisconfigurationException(
                f"an ALWA group must be (cls_key, reg_key) or (cls_key, (reg_key, ...)) of names, got {group!r}"
            )
        pairs.append((cls_key, reg if isinstance(reg, str) else reg_keys))
    keys = [key for cls_key, reg in pairs for key in (cls_key, *_reg_keys(reg))]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise MisconfigurationException(f"each loss key may appear in one ALWA group only, repeated: {repeated}")
    return tuple(pairs)


def _stack_cpu(values: list[Tensor]) -> Tensor:
    """A window as one ``Tensor[N]`` float32 on the CPU (what a checkpoint stores)."""
    if not values:
        return torch.empty(0)
    return torch.stack([v.cpu() for v in values])
