"""The ``lightning-retina`` command: LightningCLI (fit/validate/test/predict) plus demo, make-shapes, detect."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_retina.callbacks import EvaluationPlots
from lightning_retina.data import DetectionDataModule
from lightning_retina.module import RetinaNetModule

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


class RetinaNetCLI(LightningCLI):
    """LightningCLI for :class:`RetinaNetModule` + :class:`DetectionDataModule`.

    ``num_classes`` and ``class_names`` of the model are linked from the data module. An :class:`EvaluationPlots`
    callback (options ``--evaluation_plots.*``) writes PR curves and a confusion matrix after ``validate`` / ``test``.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(EvaluationPlots, "evaluation_plots")
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.class_names", apply_on="instantiate")


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
        description="RetinaNet for PyTorch Lightning. Lightning sub-commands: "
        + ", ".join(LIGHTNING_COMMANDS) + " (see `lightning-retina fit --help`).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train a small detector on generated shapes (CPU, minutes) and draw it")
    demo.add_argument("--data-dir", default="data/shapes", help="where the shapes data set is (generated if missing)")
    demo.add_argument("--out", default="demo_out", help="output folder for PNGs, metrics.json and the checkpoint")
    demo.add_argument("--max-minutes", type=float, default=8.0, help="training time budget in minutes")
    demo.add_argument("--alwa", action=argparse.BooleanOptionalAction, default=True, help="use the ALWA callback")
    demo.add_argument("--num-train", type=int, default=1500)
    demo.add_argument("--num-val", type=int, default=200)
    demo.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "gpu"))

    shapes = sub.add_parser("make-shapes", help="write a VOC- or COCO-layout data set of drawn shapes")
    shapes.add_argument("root")
    shapes.add_argument("--format", choices=("voc", "coco"), default="voc")
    shapes.add_argument("--num-train", type=int, default=1500)
    shapes.add_argument("--num-val", type=int, default=200)
    shapes.add_argument("--image-size", type=int, default=256)
    shapes.add_argument("--seed", type=int, default=0)

    detect = sub.add_parser("detect", help="run a checkpoint on images, draw boxes, print one JSON line per image")
    detect.add_argument("--ckpt", required=True, help="a checkpoint written by fit or demo")
    detect.add_argument("images", nargs="+", help="image files (JPEG, PNG)")
    detect.add_argument("--out", default="detections", help="folder for the drawn images")
    detect.add_argument("--score-thresh", type=float, default=0.3)
    detect.add_argument("--device", default="cpu")
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
