"""The ``lightning-retina`` command: LightningCLI (fit/validate/test/predict) plus demo, make-shapes, detect."""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from lightning_retina.data import DetectionDataModule
from lightning_retina.module import RetinaNetModule

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
_LIGHTNING_HELP = {
    "fit": "train a model (LightningCLI: --config, --model.*, --data.*, --trainer.*)",
    "validate": "evaluate a checkpoint on the validation split (--ckpt_path; data settings from the checkpoint)",
    "test": "evaluate a checkpoint on the test split (--ckpt_path; data settings from the checkpoint)",
    "predict": "run a checkpoint over the predict split (--ckpt_path; data settings from the checkpoint)",
}


def saved_data_settings(ckpt_path: str | Path | None) -> dict[str, Any]:
    """The DataModule arguments a checkpoint was trained with (``datamodule_hyper_parameters``), ``{}`` if none.

    Only arguments that :class:`DetectionDataModule` still takes are returned. Read with ``weights_only=True``.
    """
    if not ckpt_path or not Path(ckpt_path).is_file():
        return {}
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    saved = checkpoint.get(DetectionDataModule.CHECKPOINT_HYPER_PARAMS_KEY) or {}
    known = inspect.signature(DetectionDataModule.__init__).parameters
    return {key: value for key, value in saved.items() if key in known and key != "self"}


class RetinaNetCLI(LightningCLI):
    """LightningCLI for :class:`RetinaNetModule` + :class:`DetectionDataModule`.

    ``num_classes`` and ``class_names`` of the model are linked from the data module. ``validate`` / ``test`` /
    ``predict`` with ``--ckpt_path`` start from the data settings saved in the checkpoint (the
    ``datamodule_hyper_parameters`` Lightning writes), so the split it was validated on is read again as it was;
    a ``--config`` or ``--data.*`` argument overrides them.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.class_names", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse ``args`` (the command line :func:`main` was given; no "args is intended..." warning), then for
        validate / test / predict with ``--ckpt_path`` parse again with the checkpoint's data settings as defaults.
        """
        self.config = parser.parse_args(args)
        subcommand = self.config.get("subcommand")
        if subcommand not in LIGHTNING_COMMANDS[1:]:
            return
        saved = saved_data_settings(self.config[subcommand].get("ckpt_path"))
        if saved:
            self._subcommand_parsers[subcommand].set_defaults({f"data.{k}": v for k, v in saved.items()})
            self.config = parser.parse_args(args)


def _demo(args: argparse.Namespace) -> int:
    from lightning_retina.demo import DemoConfig, run_demo

    config = DemoConfig(
        data_dir=args.data_dir, out=args.out, max_minutes=args.max_minutes, alwa=args.alwa,
        num_train=args.num_train, num_val=args.num_val, accelerator=args.accelerator,
    )
    try:
        run_demo(config)
    except KeyboardInterrupt:
        return 130
    print(f"Wrote {config.out}/detections.png, training.png, metrics.json and model.ckpt")
    return 0


def _make_shapes(args: argparse.Namespace) -> int:
    from lightning_retina.data import make_shapes_dataset

    root = make_shapes_dataset(
        args.root, format=args.format, num_train=args.num_train, num_val=args.num_val,
        image_size=args.image_size, seed=args.seed,
    )
    print(f"Wrote a {args.format.upper()}-layout shapes data set to {root}")
    return 0


def _detect(args: argparse.Namespace) -> int:
    from lightning_retina.detect import run_detect

    return run_detect(args.ckpt, args.images, out=args.out, score_thresh=args.score_thresh, device=args.device)


def _extra_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    parser = argparse.ArgumentParser(
        prog="lightning-retina",
        description="RetinaNet for PyTorch Lightning. `lightning-retina <command> --help` describes each command.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in LIGHTNING_COMMANDS:  # listed here, parsed by LightningCLI in main()
        sub.add_parser(command, help=_LIGHTNING_HELP[command], add_help=False)

    demo = sub.add_parser("demo", help="train a small detector on generated shapes (CPU, minutes) and draw it")
    demo.add_argument("--data-dir", default="data/shapes", help="where the shapes data set is (generated if missing)")
    demo.add_argument("--out", default="demo_out", help="output folder for PNGs, metrics.json and the checkpoint")
    demo.add_argument("--max-minutes", type=float, default=8.0, help="training time budget in minutes")
    demo.add_argument("--alwa", action=argparse.BooleanOptionalAction, default=True, help="use the ALWA callback")
    demo.add_argument("--num-train", type=int, default=1500, help="training images to generate (default: 1500)")
    demo.add_argument("--num-val", type=int, default=200, help="validation images to generate (default: 200)")
    demo.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "gpu"), help="where to train")

    shapes = sub.add_parser("make-shapes", help="write a VOC- or COCO-layout data set of drawn shapes")
    shapes.add_argument("root", help="output folder")
    shapes.add_argument("--format", choices=("voc", "coco"), default="voc", help="on-disk layout (default: voc)")
    shapes.add_argument("--num-train", type=int, default=1500, help="images in the train split (default: 1500)")
    shapes.add_argument("--num-val", type=int, default=200, help="images in the val split (default: 200)")
    shapes.add_argument("--image-size", type=int, default=256, help="side of the square images, >= 32 (default: 256)")
    shapes.add_argument("--seed", type=int, default=0, help="random seed of the drawings (default: 0)")

    detect = sub.add_parser("detect", help="run a checkpoint on images, draw boxes, print one JSON line per image")
    detect.add_argument("--ckpt", required=True, help="a checkpoint written by fit or demo")
    detect.add_argument("images", nargs="+", help="image files (JPEG, PNG)")
    detect.add_argument("--out", default="detections", help="folder for the drawn images")
    detect.add_argument("--score-thresh", type=float, default=0.3, help="lowest score drawn and printed (default: 0.3)")
    detect.add_argument("--device", default="cpu", help="torch device to run on, e.g. cpu or cuda (default: cpu)")
    return parser, {"demo": _demo, "make-shapes": _make_shapes, "detect": _detect}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lightning-retina`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_COMMANDS:
        try:
            RetinaNetCLI(RetinaNetModule, DetectionDataModule, args=argv, save_config_kwargs={"overwrite": True})
        except FileNotFoundError as error:
            print(f"lightning-retina {argv[0]}: error: {error}", file=sys.stderr)
            return 2
        return 0
    parser, handlers = _extra_parser()
    args = parser.parse_args(argv)
    try:
        return handlers[args.command](args)
    except (FileNotFoundError, ValueError) as error:
        print(f"lightning-retina {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
