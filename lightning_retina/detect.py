"""``lightning-retina detect``: load a checkpoint safely, detect on image files, draw and print JSON lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image

from lightning_retina.module import RetinaNetModule
from lightning_retina.viz import draw_detections, save_image


def load_module(path: str | Path, map_location: str | torch.device = "cpu") -> RetinaNetModule:
    """Load a :class:`RetinaNetModule` from a Lightning checkpoint with ``torch.load(weights_only=True)``.

    Only tensors and plain containers are unpickled, so a hostile file cannot run code.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file is not a RetinaNetModule checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise ValueError(
            f"{path} is not a checkpoint that can be loaded safely ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise ValueError(f"{path} is not a lightning-retina checkpoint (no 'state_dict' / 'hyper_parameters')")
    try:
        module = RetinaNetModule(**checkpoint["hyper_parameters"])
        module.load_state_dict(checkpoint["state_dict"])
    except (TypeError, ValueError, RuntimeError) as error:  # another model's hyper-parameters or weights
        raise ValueError(
            f"{path} is not a lightning-retina checkpoint ({type(error).__name__}: {str(error).splitlines()[0]})"
        ) from None
    module.loss_weights.update(checkpoint.get("loss_weights", {}))
    return module.to(map_location).eval()


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file as ``FloatTensor[3, H, W]`` in 0..1 (RGB).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        return decode_image(str(path), mode=ImageReadMode.RGB).float().div_(255)
    except Exception as error:  # noqa: BLE001 - decoders raise RuntimeError/ValueError alike
        raise ValueError(f"{path} is not a readable image ({error})") from None


@torch.no_grad()
def run_detect(
    ckpt: str | Path,
    images: Sequence[str | Path],
    out: str | Path = "detections",
    score_thresh: float = 0.3,
    device: str = "cpu",
) -> int:
    """Detect objects in each image, write ``<out>/<name>.png`` and print one JSON line per image.

    Returns:
        0 when every image was processed, 1 when some could not be read (each got a one-line error on stderr).
    """
    module = load_module(ckpt, map_location=device)
    status = 0
    for path in images:
        try:
            image = read_image(path)
        except (FileNotFoundError, ValueError) as error:
            print(f"lightning-retina detect: error: {error}", file=sys.stderr)
            status = 1
            continue
        (detections,) = module([image.to(device)])
        keep = detections["scores"] >= score_thresh
        drawn = save_image(
            draw_detections(image, detections, module.class_names, score_thresh=score_thresh),
            Path(out) / f"{Path(path).stem}.png",
        )
        record = {
            "image": str(path),
            "output": str(drawn),
            "detections": [
                {
                    "label": module.class_names[int(lab)],
                    "score": round(float(s), 4),
                    "box": [round(float(c), 1) for c in box],
                }
                for box, s, lab in zip(
                    detections["boxes"][keep], detections["scores"][keep], detections["labels"][keep]
                )
            ],
        }
        print(json.dumps(record))
    return status
