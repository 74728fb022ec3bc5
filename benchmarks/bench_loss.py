"""RetinaNet loss, forward + backward: ``RetinaNetLoss`` against torchvision's matching loop + ``head.compute_loss``.

Both get the same random head outputs, anchors and targets. Ours runs with ``normalization="per_image"`` and
``reg_loss="l1"``, which is what torchvision computes, so the parity column compares losses and gradients.
A second table gives the peak memory of one forward + backward, each measured in a fresh process.

    python benchmarks/bench_loss.py [--device cpu|cuda] [--quick | --full]
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import Tensor

from benchmarks._inputs import Setting, make_anchors, make_head_outputs, make_targets, torchvision_retinanet
from benchmarks._timing import (
    describe_machine,
    parity,
    parse_args,
    peak_memory_in_subprocess,
    peak_memory_of,
    print_table,
    versus_torchvision_row,
)
from lightning_retina.losses import RetinaNetLoss

DEFAULT_SETTINGS = [
    Setting(8, 512, 20, 0),
    Setting(8, 512, 20, 20),
    Setting(8, 512, 80, 50),
    Setting(2, 800, 80, 20),
]
QUICK_SETTINGS = [Setting(2, 128, 5, 0), Setting(2, 128, 5, 3)]
MEMORY_SETTING = Setting(16, 800, 80, 50)
QUICK_MEMORY_SETTING = Setting(2, 128, 5, 3)
IMPLEMENTATIONS = ("ours", "torchvision")


def full_settings() -> list[Setting]:
    """Every combination of the issue: batch 2/8/16, 512/800 px, 20/80 classes, 0/20/50 boxes."""
    return [Setting(*s) for s in itertools.product((2, 8, 16), (512, 800), (20, 80), (0, 20, 50))]


class LossCase:
    """The inputs of one setting; ``run(name)`` is one forward + backward of an implementation."""

    def __init__(self, setting: Setting, device: torch.device | str, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        anchors, _ = make_anchors(setting.size, device)
        self.anchors = [anchors] * setting.batch
        heads = make_head_outputs(setting, anchors.shape[0], generator, device)
        self.heads = {k: v.requires_grad_() for k, v in heads.items()}
        self.targets = make_targets(setting, generator, device)
        self.ours = RetinaNetLoss(reg_loss="l1", normalization="per_image")
        self.reference = torchvision_retinanet(setting.classes, backbone="resnet18").to(device)  # matcher + head losses

    def run(self, name: str) -> dict[str, Tensor]:
        """One forward + backward of implementation ``name``; returns the losses (the gradients are in ``heads``)."""
        for t in self.heads.values():
            t.grad = None
        if name == "ours":
            losses = self.ours(self.heads, self.anchors, self.targets)
            losses = {"classification": losses["loss_cls"], "bbox_regression": losses["loss_reg"]}
        else:
            losses = self.reference.compute_loss(self.targets, self.heads, self.anchors)
        sum(losses.values()).backward()
        return {k: v.detach() for k, v in losses.items()}

    def check_parity(self) -> str:
        """Losses (rtol 1e-4) and gradients (rtol 1e-3) of ours against torchvision's."""
        outputs = {}
        for name in IMPLEMENTATIONS:
            losses = self.run(name)
            outputs[name] = (losses, {k: v.grad.clone() for k, v in self.heads.items()})
        (ours, our_grads), (theirs, their_grads) = outputs["ours"], outputs["torchvision"]
        ok = all(torch.allclose(ours[k], theirs[k], rtol=1e-4, atol=1e-6) for k in ours)
        ok &= all(torch.allclose(our_grads[k], their_grads[k], rtol=1e-3, atol=1e-8) for k in our_grads)
        return parity(ok, "loss + grads")


def time_settings(settings: Sequence[Setting], args: Any) -> list[dict[str, Any]]:
    rows = []
    for setting in settings:
        case = LossCase(setting, args.device)
        rows.append(versus_torchvision_row(setting.label(), case.run, case.check_parity(), args))
        del case
    return rows


def memory_row(setting: Setting, device: str) -> dict[str, Any]:
    peaks = {
        name: peak_memory_in_subprocess(
            __file__, ["--probe-memory", name, "--device", device, "--setting", ",".join(map(str, setting))]
        )["peak_bytes"]
        for name in IMPLEMENTATIONS
    }
    return {
        "setting": setting.label(),
        "torchvision peak MiB": round(peaks["torchvision"] / 2**20),
        "ours peak MiB": round(peaks["ours"] / 2**20),
        "ratio (tv/ours)": round(peaks["torchvision"] / max(peaks["ours"], 1), 2),
        "parity": parity(peaks["ours"] <= peaks["torchvision"], "ours <= torchvision"),
    }


def probe_memory(name: str, setting: Setting, device: str) -> None:
    """Print ``{"peak_bytes": …}``: the peak-memory rise of one forward + backward (run in a fresh process)."""
    LossCase(Setting(1, 128, setting.classes, 1), device).run(name)  # load kernels / thread pools first
    case = LossCase(setting, device)
    print(json.dumps({"peak_bytes": peak_memory_of(lambda: case.run(name), device)}))


def main(argv: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    def extra(parser):
        parser.add_argument("--probe-memory", choices=IMPLEMENTATIONS, help="internal: one memory measurement")
        parser.add_argument("--setting", help="internal: batch,size,classes,boxes of --probe-memory")

    args = parse_args(__doc__.splitlines()[0], argv, extra)
    if args.probe_memory:
        probe_memory(args.probe_memory, Setting(*map(int, args.setting.split(","))), args.device)
        return {}
    settings = QUICK_SETTINGS if args.quick else full_settings() if args.full else DEFAULT_SETTINGS
    print(f"# Loss forward + backward, {describe_machine(args.device)}; median of {args.repeats}, interleaved\n")
    speed = time_settings(settings, args)
    print_table(speed)
    print()
    memory = [memory_row(QUICK_MEMORY_SETTING if args.quick else MEMORY_SETTING, args.device)]
    print_table(memory)
    return {"speed": speed, "memory": memory}


if __name__ == "__main__":
    main()
