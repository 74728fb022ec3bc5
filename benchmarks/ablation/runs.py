"""Training one setting with one seed, and keeping its result so that an interrupted ablation resumes."""

from __future__ import annotations

import gc
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, seed_everything

from benchmarks.ablation.evaluation import EvaluateEvery, evaluate
from benchmarks.ablation.pretrain import PretrainSettings
from benchmarks.ablation.settings import Setting
from lightning_retina.callbacks import ALWA, TrainingHistory
from lightning_retina.data import DetectionDataModule
from lightning_retina.demo import DemoConfig, build_demo_module, build_demo_trainer

_QUIET_TRAINER = {"logger": False, "enable_checkpointing": False, "enable_model_summary": False,
                  "enable_progress_bar": False}  # fmt: skip  # the bar over runs is the only output


@dataclass(frozen=True)
class Recipe:
    """Data, model and budget of one ``--scale``.

    Attributes:
        config: the demo config: data size, input size, FPN/head width, batch, lr, ALWA interval.
        max_steps: optimizer steps per run (a cosine lr over the steps after a 50-step warm-up: a seed's run repeats
            exactly).
        eval_every: steps between validation evaluations along the run.
        pretrain: the shared backbone's pretraining (``None``: every run from scratch).
        data_seed: seed of the generated data set (one data set for every run).
        data_options: other :class:`~lightning_retina.data.DetectionDataModule` arguments (the shapes' drawing).
        model_options: other :class:`~lightning_retina.RetinaNetModule` arguments (e.g. ``anchor_sizes``).
    """

    config: DemoConfig
    max_steps: int
    eval_every: int
    pretrain: PretrainSettings | None = field(default_factory=PretrainSettings)
    data_seed: int = 0
    data_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What makes two runs comparable: everything but the output paths (JSON types: lists for tuples)."""
        config = {k: v for k, v in asdict(self.config).items() if k not in ("data_dir", "out", "seed", "alwa")}
        pretrain = None if self.pretrain is None else asdict(self.pretrain)
        record = {"max_steps": self.max_steps, "eval_every": self.eval_every, "pretrain": pretrain,
                  "data_seed": self.data_seed, "config": config, "data_options": self.data_options,
                  "model_options": self.model_options}  # fmt: skip
        return json.loads(json.dumps(record))


def alwa_callback(setting: Setting, config: DemoConfig) -> ALWA | None:
    """The official ALWA rule for a setting with ALWA: ALWA_2 (the std statistic), first window at step 0, the
    recipe's interval; ``None`` without ALWA."""
    if setting.alwa == "none":
        return None
    return ALWA(interval=config.alwa_interval, statistic="std", start_step=0)


def train_and_evaluate(
    setting: Setting, seed: int, recipe: Recipe, datamodule: DetectionDataModule, backbone: Path | None
) -> dict[str, Any]:
    """Train one setting for the recipe's steps and evaluate on the val split along the run and at its end.

    The seed fixes the FPN and head initialisation, the data order and the augmentations: the same for every setting,
    so settings are compared with the baseline seed by seed.

    Args:
        setting: losses, ALWA, focal γ/α.
        seed: the run's seed.
        recipe: the recipe.
        datamodule: the data, prepared and set up for ``"fit"`` (its generated images are shared by every run).
        backbone: the pretrained backbone's ``state_dict`` file, or ``None`` to train from scratch.

    Returns:
        ``map``, ``map_50`` (at the end), ``evaluations`` (``step``, ``map``, ``map_50`` along the run), ``steps``,
        ``train_seconds``, ``precision``, ``loss_weights`` (final) and ``history`` (per-step raw losses and weights).
    """
    result = _fit_and_evaluate(setting, seed, recipe, datamodule, backbone)
    # The finished trainer holds its train loader's iterator, and with it a worker process, in reference cycles.
    # Collect them now: left to a later collection, the iterator's clean-up can run inside a worker the next run
    # forks, which prints "Exception ignored in _MultiProcessingDataLoaderIter.__del__ ... can only test a child
    # process" and leaves the old worker running meanwhile.
    gc.collect()
    return result


def _fit_and_evaluate(
    setting: Setting, seed: int, recipe: Recipe, datamodule: DetectionDataModule, backbone: Path | None
) -> dict[str, Any]:
    """The body of :func:`train_and_evaluate`, whose objects are all unreachable once it returns."""
    config = recipe.config
    seed_everything(seed, workers=True, verbose=False)
    overrides: dict[str, Any] = {**recipe.model_options, **setting.module_overrides(), "metric": "coco"}
    if backbone is not None:
        overrides["backbone_weights"] = str(backbone)
    module = build_demo_module(config, list(datamodule.class_names), max_steps=recipe.max_steps, **overrides)
    run_data = DetectionDataModule(**{**datamodule.hparams, "shuffle_seed": seed})
    run_data.setup("fit")
    history = TrainingHistory()
    evaluations = EvaluateEvery(run_data.val_dataloader(), recipe.eval_every, recipe.max_steps)
    callbacks: list[Callback] = [history, evaluations]
    alwa = alwa_callback(setting, config)
    if alwa is not None:
        callbacks.append(alwa)
    trainer = build_demo_trainer(config, callbacks, max_steps=recipe.max_steps, **_QUIET_TRAINER)
    started = time.monotonic()
    trainer.fit(module, train_dataloaders=run_data.train_dataloader())
    train_seconds = time.monotonic() - started
    final = evaluations.rows[-1] if evaluations.rows and evaluations.rows[-1]["step"] == trainer.global_step else None
    final = final or {"step": float(trainer.global_step), **evaluate(module, run_data.val_dataloader())}
    return {
        "map": final["map"],
        "map_50": final["map_50"],
        "evaluations": evaluations.rows,
        "steps": trainer.global_step,
        "train_seconds": round(train_seconds, 1),
        "precision": trainer.precision,
        "loss_weights": dict(module.loss_weights),
        "history": history.rows,
    }


def run_path(out: Path, setting: Setting, seed: int, repeat: int = 0) -> Path:
    """Where the result of one run is kept (``repeat`` > 0: a second run of the same seed, for the run-to-run
    spread)."""
    suffix = f"-repeat{repeat}" if repeat else ""
    return out / "runs" / f"{setting.name}-seed{seed}{suffix}.json"


def load_finished(path: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """The saved result at ``path``, or ``None`` when the run has not finished.

    Raises:
        ValueError: naming the file, when it is not a JSON object or the run was made with another recipe.
    """
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path} is not a readable run result ({error}); delete it to train that run again") from None
    if not isinstance(result, dict):
        raise ValueError(f"{path} holds a JSON {type(result).__name__}, not a run result; delete it to train that run again")
    if result.get("recipe") != record:
        differences = "; ".join(recipe_differences(result.get("recipe"), record))
        raise ValueError(
            f"{path} was run with the recipe's {differences}; use another --out for another scale or budget"
        )
    return result


def recipe_differences(saved: Any, wanted: Any, key: str = "") -> list[str]:
    """``"<dotted key>=<saved>, not <wanted>"`` for each value of two recipe records that differs (nested dicts are
    compared key by key, so a refused run names what changed instead of printing both records)."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        keys = sorted(saved.keys() | wanted.keys())
        return [d for k in keys for d in recipe_differences(saved.get(k), wanted.get(k), f"{key}.{k}" if key else k)]
    return [] if saved == wanted else [f"{key or 'record'}={saved!r}, not {wanted!r}"]


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write through a temporary file, so an interrupted write never looks like a finished run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
