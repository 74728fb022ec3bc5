"""Inference: images/s of our detection (eager module, exported TorchScript) against torchvision's ``RetinaNet.forward``.

Both sides run the same network (``RetinaNetModule.model.to_torchvision()`` shares its weights) in eval mode on the
same batch of images, without gradients. The classification bias is drawn from N(-3, 1.5²) so that, like a head early
in training, thousands of candidates per image pass the 0.05 score threshold: what separates the two is the
post-processing (ours batched over the images, torchvision's a loop over images and classes). The parity column
compares the detections of every image.

    python benchmarks/bench_inference.py [--device cpu|cuda] [--quick]
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import Tensor

from benchmarks._timing import describe_machine, parity, parse_args, print_table, versus_torchvision_row
from benchmarks.bench_postprocess import canonical_order
from lightning_retina import RetinaNetModule
from lightning_retina.export import export_model


class InferenceSetting(NamedTuple):
    """``batch`` images of ``size`` x ``size`` px, a ``backbone`` RetinaNet with ``classes`` classes."""

    batch: int
    size: int
    classes: int
    backbone: str


DEFAULT_SETTINGS = [InferenceSetting(8, 512, 20, "resnet50")]
QUICK_SETTINGS = [InferenceSetting(2, 128, 5, "resnet18")]


class InferenceCase:
    """One setting: the module, torchvision's model on its weights, an exported TorchScript copy and the images."""

    def __init__(self, setting: InferenceSetting, device: str, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.module = RetinaNetModule(
            num_classes=setting.classes, backbone=setting.backbone, min_size=setting.size, max_size=setting.size,
            metric=None,
        ).to(device).eval()  # fmt: skip
        torch.nn.init.normal_(self.module.model.head.classification_head.cls_logits.bias, -3.0, 1.5)
        self.reference = self.module.model.to_torchvision().eval()
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(setting.batch, 3, setting.size, setting.size, generator=generator).to(device)
        self.image_list = list(self.images)
        with tempfile.TemporaryDirectory() as folder:
            path = export_model(self.module.model, "torchscript", Path(folder) / "model.pt",
                                (setting.size, setting.size), setting.batch)  # fmt: skip
            self.exported = torch.jit.load(str(path), map_location=device)

    @torch.inference_mode()
    def run(self, name: str) -> Any:
        if name == "ours":
            return self.module(self.image_list)
        if name == "exported":
            return self.exported(self.images)
        return self.reference(self.image_list)

    def check_parity(self) -> str:
        """The eager module's detections equal torchvision's (as sets: ties may come in any order)."""
        ours, theirs = self.run("ours"), self.run("torchvision")
        ok, count = True, 0
        for a, b in zip(ours, theirs):
            a, b = canonical_order(a), canonical_order(b)
            same_shape = a["scores"].shape == b["scores"].shape
            ok &= same_shape and torch.equal(a["labels"], b["labels"])
            ok &= same_shape and torch.allclose(a["scores"], b["scores"]) and torch.allclose(a["boxes"], b["boxes"])
            count += len(a["scores"])
        return parity(ok, f"{count} detections")

    def check_exported_parity(self) -> str:
        """The exported model's padded outputs hold the eager module's detections, in its order."""
        boxes, scores, labels, counts = self.run("exported")
        ok, count = True, 0
        for i, detections in enumerate(self.run("ours")):
            n = int(counts[i])
            ok &= n == len(detections["scores"]) and torch.equal(labels[i, :n], detections["labels"])
            ok &= torch.allclose(scores[i, :n], detections["scores"], atol=1e-5)
            ok &= torch.allclose(boxes[i, :n], detections["boxes"], atol=1e-4)
            count += n
        return parity(ok, f"{count} detections")


def _images_per_second(row: dict[str, Any], batch: int) -> dict[str, Any]:
    """The row with images/s of both sides added (from its median milliseconds per batch)."""
    return {**row, "torchvision img/s": round(batch * 1000 / row["torchvision ms"], 2),
            "ours img/s": round(batch * 1000 / row["ours ms"], 2)}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    args = parse_args(__doc__.splitlines()[0], argv)
    settings = QUICK_SETTINGS if args.quick else DEFAULT_SETTINGS
    print(f"# Inference, {describe_machine(args.device)}; median of {args.repeats}, interleaved\n")
    rows = []
    for setting in settings:
        case = InferenceCase(setting, args.device)
        label = f"B={setting.batch} {setting.size}px {setting.backbone} K={setting.classes}"
        eager = versus_torchvision_row(f"eager module, {label}", case.run, case.check_parity(), args)
        rows.append(_images_per_second(eager, setting.batch))

        def exported_or_torchvision(name: str) -> Tensor | list[dict[str, Tensor]]:
            return case.run("exported" if name == "ours" else name)

        exported = versus_torchvision_row(
            f"exported TorchScript, {label}", exported_or_torchvision, case.check_exported_parity(), args
        )
        rows.append(_images_per_second(exported, setting.batch))
    print_table(rows)
    return {"speed": rows}


if __name__ == "__main__":
    main()
