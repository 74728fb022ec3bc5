"""One training step: ``RetinaNetModule`` through a Lightning ``Trainer`` against a plain PyTorch loop over torchvision.

Both models are the same torchvision RetinaNet (ResNet-18-FPN, GroupNorm head) with the same initial weights, the
same SGD and the same in-memory batches. Ours runs inside ``Trainer.fit``; the torchvision step runs in a
callback right after each of ours, so the two alternate step by step. Our time per step is the time from one
``on_train_batch_start`` to the next minus the torchvision step in between, so it includes all of Lightning's
loop (data fetching, hooks, logging, optimizer step). Rows:

- ``fast defaults``: ours with the package's fast precision (``bf16-mixed`` where the CPU has AVX512-BF16/AMX or
  on CUDA) and ``channels_last``, against torchvision in float32;
- ``both fp32``: the Lightning overhead and our loss/post-processing at equal precision;
- ``both bf16``: against torchvision under ``torch.autocast`` bf16 with ``channels_last`` (its AMP loop).

The parity column compares the losses of the first step (same weights, same batch): 1e-4 relative in fp32,
5 % when one side runs in bf16.

    python benchmarks/bench_train_step.py [--device cpu|cuda] [--quick | --full]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import logging
import statistics
import warnings

import torch
from lightning.pytorch import Callback, Trainer
from torch import Tensor
from torch.utils.data import DataLoader

from benchmarks._inputs import torchvision_retinanet
from benchmarks._timing import describe_machine, ms, parity, parse_args, print_table, synchronize
from lightning_retina import RetinaNetModule
from lightning_retina.precision import fast_precision

NUM_CLASSES = 20


class StepSetting(NamedTuple):
    batch: int
    size: int
    anchor_sizes: tuple[int, ...]


DEFAULT_SETTING = StepSetting(8, 256, (16, 32, 64, 128, 256))
FULL_SETTINGS = [
    DEFAULT_SETTING,
    StepSetting(2, 512, (32, 64, 128, 256, 512)),
    StepSetting(8, 512, (32, 64, 128, 256, 512)),
]
QUICK_SETTING = StepSetting(2, 64, (8, 16, 32, 64, 128))


class Row(NamedTuple):
    name: str
    ours_precision: str
    ours_channels_last: bool
    theirs_bf16: bool


def make_rows(device: str) -> list[Row]:
    fast = fast_precision("cuda" if device == "cuda" else "cpu")
    return [
        Row(f"fast defaults (ours {fast} + channels_last, torchvision fp32)", fast, True, False),
        Row("both fp32", "32-true", False, False),
        Row("both bf16 + channels_last (torchvision under autocast)", "bf16-mixed", True, True),
    ]


def make_batches(setting: StepSetting, count: int, seed: int = 0) -> list[tuple[list[Tensor], list[dict[str, Tensor]]]]:
    """``count`` batches of random images with 1–8 random boxes each."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        images, targets = [], []
        for _ in range(setting.batch):
            n = int(torch.randint(1, 9, (1,), generator=g))
            wh = 8 + torch.rand(n, 2, generator=g) * (setting.size / 2)
            xy = torch.rand(n, 2, generator=g) * (setting.size - wh)
            images.append(torch.rand(3, setting.size, setting.size, generator=g))
            labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
            targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": labels})
        batches.append((images, targets))
    return batches


class TorchvisionLoop:
    """The plain PyTorch training step over torchvision's RetinaNet (its own loss and matching loop)."""

    def __init__(self, module: RetinaNetModule, setting: StepSetting, device: str, bf16: bool) -> None:
        self.model = torchvision_retinanet(
            NUM_CLASSES, backbone="resnet18", head_norm="group", anchor_sizes=setting.anchor_sizes,
            min_size=setting.size, max_size=setting.size,
        )
        self.model.load_state_dict(module.model.state_dict())
        self.model.to(device).train()
        if bf16:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=module.hparams.lr, momentum=0.9, weight_decay=1e-4)
        self.device, self.bf16 = torch.device(device), bf16

    def step(self, images: list[Tensor], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        with torch.enable_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            losses = self.model(images, targets)
        self.optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        self.optimizer.step()
        return {k: v.detach() for k, v in losses.items()}


class Interleave(Callback):
    """Runs one torchvision step after each of ours and times both (ours without the torchvision step)."""

    def __init__(self, loop: TorchvisionLoop, batches: list, device: str) -> None:
        self.loop, self.batches, self.device = loop, batches, device
        self.ours: list[float] = []
        self.theirs: list[float] = []
        self.first_losses: dict[str, dict[str, Tensor]] = {}
        self._start: float | None = None
        self._theirs_since_start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        if self._start is not None:
            self.ours.append(now - self._start - self._theirs_since_start)
        self._start, self._theirs_since_start = now, 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        synchronize(self.device)
        start = time.perf_counter()
        images, targets = self.batches[batch_idx % len(self.batches)]
        images = [i.to(self.device) for i in images]
        theirs = self.loop.step(images, [{k: v.to(self.device) for k, v in t.items()} for t in targets])
        synchronize(self.device)
        self._theirs_since_start = time.perf_counter() - start
        self.theirs.append(self._theirs_since_start)
        if not self.first_losses:
            ours = {"classification": outputs["loss_cls"], "bbox_regression": outputs["loss_reg"]}
            self.first_losses = {"ours": ours, "theirs": theirs}


def run_row(row: Row, setting: StepSetting, args: Any) -> dict[str, Any]:
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.manual_seed(0)
    module = RetinaNetModule(
        num_classes=NUM_CLASSES, backbone="resnet18", head_norm="group", anchor_sizes=setting.anchor_sizes,
        min_size=setting.size, max_size=setting.size, normalization="per_image", reg_loss="l1", metric=None,
        warmup_steps=0, lr_schedule="constant", channels_last=row.ours_channels_last,
    )
    loop = TorchvisionLoop(module, setting, args.device, row.theirs_bf16)
    steps = args.warmup + args.repeats + 1  # the last interval ends at the next batch start
    batches = make_batches(setting, steps)
    callback = Interleave(loop, batches, args.device)
    trainer = Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu", devices=1, precision=row.ours_precision, max_steps=steps,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[callback], limit_val_batches=0,
    )
    loader = DataLoader(batches, batch_size=None, collate_fn=lambda b: b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, loader)
    ours = statistics.median(callback.ours[args.warmup :])
    theirs = statistics.median(callback.theirs[args.warmup : args.warmup + len(callback.ours[args.warmup :])])
    both_fp32 = row.ours_precision == "32-true" and not row.theirs_bf16
    first = callback.first_losses
    rel = max(abs(float(first["ours"][k]) / float(first["theirs"][k]) - 1) for k in first["theirs"])
    check = parity(rel <= (1e-4 if both_fp32 else 0.05), f"step-1 loss rel. diff {rel:.1e}")
    return {
        "setting": f"{row.name}, B={setting.batch} {setting.size}px",
        "torchvision ms": ms(theirs),
        "ours ms": ms(ours),
        "ours img/s": round(setting.batch / ours, 1),
        "ratio (tv/ours)": round(theirs / ours, 2),
        "parity": check,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    args = parse_args(__doc__.splitlines()[0], argv)
    settings = [QUICK_SETTING] if args.quick else FULL_SETTINGS if args.full else [DEFAULT_SETTING]
    machine = describe_machine(args.device)
    print(f"# Training step, ResNet-18-FPN GN head, {machine}; median of {args.repeats}, interleaved\n")
    rows = [run_row(row, setting, args) for setting in settings for row in make_rows(args.device)]
    print_table(rows)
    return {"speed": rows}


if __name__ == "__main__":
    main()
