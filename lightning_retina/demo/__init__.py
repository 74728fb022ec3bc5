"""The CPU demo: generate shapes, train a ResNet-18-FPN RetinaNet from scratch with ALWA, evaluate, draw.

One file per job: :mod:`~lightning_retina.demo.recipe` (the settings and the builders of data, model and trainer),
:mod:`~lightning_retina.demo.run` (:func:`run_demo`: training and the output folder),
:mod:`~lightning_retina.demo.evaluation` (metrics and the picture) and :mod:`~lightning_retina.demo.table` (the
printed table). Every name is importable from here.
"""

from lightning_retina.demo.evaluation import evaluate_and_draw
from lightning_retina.demo.recipe import (
    WARMUP_STEPS,
    DemoConfig,
    build_demo_datamodule,
    build_demo_module,
    build_demo_trainer,
    check_demo_config,
    demo_anchor_sizes,
)
from lightning_retina.demo.run import OUT_MARKER, WRITER, run_demo
from lightning_retina.demo.table import format_table

__all__ = [
    "OUT_MARKER",
    "WARMUP_STEPS",
    "WRITER",
    "DemoConfig",
    "build_demo_datamodule",
    "build_demo_module",
    "build_demo_trainer",
    "check_demo_config",
    "demo_anchor_sizes",
    "evaluate_and_draw",
    "format_table",
    "run_demo",
]
