"""RetinaNet post-processing: our batched ``postprocess_detections`` against torchvision's per-image loop.

The head outputs are random (logits ~ N(-3, 1.5²), like an untrained head that lets many candidates through the
0.05 score threshold: top-1000 per level, class-wise NMS over thousands of boxes per image). The parity column
compares the detections of every image (boxes, scores, labels).

    python benchmarks/bench_postprocess.py [--device cpu|cuda] [--quick | --full]
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import Tensor

from benchmarks._inputs import Setting, make_anchors, make_head_outputs, torchvision_retinanet
from benchmarks._timing import describe_machine, parity, parse_args, print_table, versus_torchvision_row
from lightning_retina.postprocess import postprocess_detections

DEFAULT_SETTINGS = [Setting(2, 512, 20, 0), Setting(8, 512, 20, 0), Setting(8, 512, 80, 0), Setting(16, 800, 80, 0)]
QUICK_SETTINGS = [Setting(2, 128, 5, 0)]


def full_settings() -> list[Setting]:
    """Batch 2/8/16, 512/800 px, 20/80 classes (boxes do not matter here)."""
    return [Setting(*s, 0) for s in itertools.product((2, 8, 16), (512, 800), (20, 80))]


class PostprocessCase:
    """Inputs of one setting and a closure per implementation."""

    def __init__(self, setting: Setting, device: torch.device | str, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        anchors, self.per_level = make_anchors(setting.size, device)
        self.heads = make_head_outputs(setting, anchors.shape[0], generator, device)
        self.anchors = anchors.expand(setting.batch, -1, -1)
        self.image_sizes = [(setting.size, setting.size)] * setting.batch
        self.reference = torchvision_retinanet(setting.classes, backbone="resnet18").to(device).eval()

    @torch.no_grad()
    def run(self, name: str) -> list[dict[str, Tensor]]:
        if name == "ours":
            return postprocess_detections(
                self.heads["cls_logits"],
                self.heads["bbox_regression"],
                self.anchors,
                self.per_level,
                self.image_sizes,
                self.reference.box_coder,
            )
        split_heads = {k: list(v.split(self.per_level, dim=1)) for k, v in self.heads.items()}
        split_anchors = [list(a.split(self.per_level)) for a in self.anchors]
        return self.reference.postprocess_detections(split_heads, split_anchors, self.image_sizes)

    def check_parity(self) -> str:
        """Same boxes, scores and labels in every image, compared as sets (equal scores may come in any order)."""
        ours, theirs = self.run("ours"), self.run("torchvision")
        ok, count = len(ours) == len(theirs), 0
        for a, b in zip(ours, theirs):
            a, b = canonical_order(a), canonical_order(b)
            if a["scores"].shape != b["scores"].shape:
                ok = False
                continue
            ok &= torch.equal(a["labels"], b["labels"])
            ok &= torch.allclose(a["scores"], b["scores"]) and torch.allclose(a["boxes"], b["boxes"])
            count += len(a["scores"])
        return parity(ok, f"{count} detections")


def canonical_order(detections: dict[str, Tensor]) -> dict[str, Tensor]:
    """Detections ordered by score (descending), then label, then box corners: a total order for comparisons."""
    order = torch.arange(len(detections["scores"]), device=detections["scores"].device)
    keys = [detections["boxes"][:, i] for i in (3, 2, 1, 0)] + [detections["labels"], -detections["scores"]]
    for key in keys:  # least significant first; stable sorts keep the earlier keys' order among ties
        order = order[torch.sort(key[order], stable=True).indices]
    return {k: v[order] for k, v in detections.items()}


def main(argv: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    args = parse_args(__doc__.splitlines()[0], argv)
    settings = QUICK_SETTINGS if args.quick else full_settings() if args.full else DEFAULT_SETTINGS
    print(f"# Post-processing, {describe_machine(args.device)}; median of {args.repeats}, interleaved\n")
    rows = []
    for setting in settings:
        case = PostprocessCase(setting, args.device)
        label = f"B={setting.batch} {setting.size}px K={setting.classes}"
        rows.append(versus_torchvision_row(label, case.run, case.check_parity(), args))
    print_table(rows)
    return {"speed": rows}


if __name__ == "__main__":
    main()
