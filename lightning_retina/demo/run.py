"""Running the demo: generate the shapes, train with the recipe, save the checkpoint, evaluate, write the outputs."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from typing_extensions import override

from lightning_retina.callbacks import ALWA, TrainingHistory
from lightning_retina.demo.evaluation import evaluate_and_draw
from lightning_retina.demo.recipe import (
    DemoConfig,
    build_demo_datamodule,
    build_demo_module,
    build_demo_trainer,
    check_demo_config,
)
from lightning_retina.demo.table import format_table
from lightning_retina.output_folder import claim_output_folder

#: The demo's marker in its output folder: a folder holding it was made by the demo and may be written again.
OUT_MARKER = "lightning-retina-demo.json"
WRITER = "lightning-retina demo"


class _CheckpointOnInterrupt(Callback):
    """Ctrl-C during training: save a checkpoint before Lightning shuts down."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saved = False

    @override
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            trainer.save_checkpoint(self.path)
            self.saved = True



def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Train, evaluate and draw; returns the metrics written to ``metrics.json``.

    Writes into ``config.out``: ``detections.png``, ``training.png``, ``metrics.json``, ``model.ckpt`` and its marker
    :data:`OUT_MARKER`. Nothing a user owns is overwritten: ``config.out`` must be new, empty or an earlier demo's
    output folder (unless ``config.overwrite``), and ``config.data_dir`` new, empty or a shapes set written by
    :func:`~lightning_retina.data.make_shapes_dataset` (``overwrite`` does not apply to it). The settings and the
    folders are checked before anything is generated or trained.

    Raises:
        ValueError: for settings refused by :func:`check_demo_config`, or an output / data folder holding a user's
            files.
        KeyboardInterrupt: re-raised after saving ``interrupted.ckpt`` when the user presses Ctrl-C.
    """
    check_demo_config(config)
    out = claim_output_folder(config.out, OUT_MARKER, WRITER, overwrite=config.overwrite, option="--overwrite")
    seed_everything(config.seed, workers=True, verbose=False)
    datamodule = build_demo_datamodule(config)
    datamodule.prepare_data()
    module = build_demo_module(config, list(datamodule.class_names))
    history = TrainingHistory()
    interrupt = _CheckpointOnInterrupt(out / "interrupted.ckpt")
    callbacks: list[Callback] = [history, interrupt]
    if config.alwa:
        callbacks.append(ALWA(interval=config.alwa_interval, start_step=config.alwa_start_step))
    trainer = build_demo_trainer(config, callbacks)
    precision = trainer.precision
    print(f"Training ResNet-18-FPN RetinaNet from scratch for {config.max_minutes:g} min "
          f"({precision}, {config.input_size} px, batch {config.batch_size}, ALWA {'on' if config.alwa else 'off'})")
    started = time.monotonic()
    try:
        trainer.fit(module, datamodule=datamodule)
    except SystemExit:
        if interrupt.saved:
            print(f"\nInterrupted: checkpoint saved to {interrupt.path}")
            raise KeyboardInterrupt from None
        raise
    train_seconds = time.monotonic() - started
    trainer.save_checkpoint(out / "model.ckpt")
    history.plot(out / "training.png", title="demo: raw losses and ALWA weight")

    metrics = evaluate_and_draw(module, datamodule, out / "detections.png", config.accelerator)
    metrics.update(
        steps=trainer.global_step,
        train_seconds=round(train_seconds, 1),
        precision=precision,
        loss_weights=dict(module.loss_weights),
        config=asdict(config),
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(format_table(metrics))
    return metrics
