"""Load a trained :class:`RetinaNetModule` for inference from a checkpoint treated as hostile input.

Every checkpoint that ``lightning-retina fit`` (LightningCLI), ``lightning-retina demo`` or ``Trainer.save_checkpoint``
writes loads through Lightning's own :meth:`~lightning.pytorch.LightningModule.load_from_checkpoint`, with

- ``weights_only=True``: only tensors and plain containers are unpickled, so the file cannot run code (Lightning
  itself refuses an ``_instantiator`` / ``_class_path`` outside its allowlist);
- ``backbone_weights=None``: the model is built without downloading or reading pretrained weights (the state dict
  holds the trained weights anyway; a backbone trained with frozen BatchNorm loads into ordinary BatchNorm, which
  computes the same in eval mode);
- bounded sizes: hyper-parameters that decide how much the model allocates are checked against
  :data:`INFERENCE_LIMITS` *before* anything is built.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lightning_retina.module import RetinaNetModule

#: Largest accepted value of each size hyper-parameter when loading for inference. They are far above any real
#: detector (COCO: 80 classes, LVIS: 1203; paper: 256 FPN channels, 800/1333-px images) and keep the head of the
#: largest accepted model at about 0.3 GB of float32 weights.
INFERENCE_LIMITS: dict[str, int] = {
    "num_classes": 2048,
    "fpn_channels": 1024,
    "min_size": 8192,
    "max_size": 8192,
    "detections_per_img": 10_000,
    "topk_candidates": 100_000,
}


def check_inference_hparams(hparams: Mapping[str, Any], source: str) -> None:
    """Refuse hyper-parameters that would make building the model allocate without bound.

    Args:
        hparams: the checkpoint's ``hyper_parameters``.
        source: the checkpoint's name for the error message.

    Raises:
        ValueError: naming ``source``, the key and the value of a size that is not an integer in
            ``1..INFERENCE_LIMITS[key]``.
    """
    for key, limit in INFERENCE_LIMITS.items():
        if key not in hparams:
            continue
        value = hparams[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
            raise ValueError(
                f"{source}: hyper-parameter {key}={value!r} is not an integer in 1..{limit}; refusing to build a "
                "model from it"
            )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file safely (``weights_only=True``, tensors memory-mapped, on the CPU).

    Returns:
        the checkpoint dict, with ``state_dict`` and ``hyper_parameters``.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: naming ``path`` when it is a folder, not a ``torch.save`` zip archive, cannot be unpickled safely
            or is not a Lightning module checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive (since PyTorch 1.6); mmap needs one
        raise ValueError(
            f"{path} is not a checkpoint that can be loaded safely (not a torch.save zip archive: empty, text, JSON, "
            "a plain pickle or another format)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means "not a loadable checkpoint"
        raise ValueError(
            f"{path} is not a checkpoint that can be loaded safely ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise ValueError(f"{path} is not a lightning-retina checkpoint (no 'state_dict')")
    if not isinstance(checkpoint.get("hyper_parameters"), Mapping):
        raise ValueError(f"{path} is not a lightning-retina checkpoint (no 'hyper_parameters')")
    return checkpoint


def load_module(path: str | Path, map_location: str | torch.device = "cpu") -> RetinaNetModule:
    """Load a :class:`RetinaNetModule` for inference, in eval mode (see the module docstring for the safety rules).

    Args:
        path: a checkpoint written by ``fit``, ``demo`` or ``Trainer.save_checkpoint``.
        map_location: the device to load the weights onto.

    Returns:
        the module in eval mode on ``map_location``.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: naming ``path`` when it is not a safely loadable RetinaNetModule checkpoint or when its
            hyper-parameters are out of bounds (naming the key and value).
    """
    path = Path(path)
    check_inference_hparams(read_checkpoint(path)["hyper_parameters"], str(path))
    try:
        module = RetinaNetModule.load_from_checkpoint(
            path, map_location=map_location, weights_only=True, strict=True, backbone_weights=None
        )
    except (TypeError, ValueError, RuntimeError, KeyError, AttributeError) as error:  # another model, bad values
        raise ValueError(
            f"{path} is not a lightning-retina checkpoint ({type(error).__name__}: {str(error).splitlines()[0]})"
        ) from None
    return module.to(map_location).eval()
