"""What the evaluation callbacks read from a validation/test batch: images, detections, targets, class names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor


def evaluation_batch(
    outputs: Any, batch: Any, pl_module: LightningModule
) -> tuple[Sequence[Tensor], list[dict[str, Tensor]], Sequence[dict[str, Tensor]]]:
    """``(images, detections, targets)`` of one evaluation batch ``(images, targets)``.

    The detections are ``outputs["detections"]`` when the step returned them (as
    :class:`~lightning_retina.RetinaNetModule` does); otherwise the module is run on the images (in eval mode a
    detector's ``forward`` returns per image ``boxes`` / ``scores`` / ``labels``).
    """
    images, targets = batch
    if isinstance(outputs, Mapping) and "detections" in outputs:
        return images, list(outputs["detections"]), outputs.get("targets", targets)
    with torch.no_grad():
        return images, list(pl_module(list(images))), targets


def class_names_of(pl_module: LightningModule, given: Sequence[str] | None) -> list[str]:
    """``given``, else the module's ``class_names``.

    Raises:
        ValueError: when neither is there.
    """
    names = given if given is not None else getattr(pl_module, "class_names", None)
    if names is None:
        raise ValueError(f"{type(pl_module).__name__} has no class_names: pass class_names= to the callback")
    return list(names)
