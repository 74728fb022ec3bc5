"""The ``lightning-retina`` command: LightningCLI (fit/validate/test/predict) plus demo, make-shapes, detect."""

from __future__ import annotations

import argparse
import inspect
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from lightning_retina.callbacks import COCOPredictionWriter, EvaluationPlots
from lightning_retina.data import DetectionDataModule
from lightning_retina.data.image_io import DEFAULT_MAX_PIXELS
from lightning_retina.module import RetinaNetModule

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
_LIGHTNING_HELP = {
    "fit": "train a model (LightningCLI: --config, --model.*, --data.*, --trainer.*)",
    "validate": "evaluate a checkpoint on the validation split (--ckpt_path; data settings from the checkpoint)",
    "test": "evaluate a checkpoint on the test split (--ckpt_path; data settings from the checkpoint)",
    "predict": "run a checkpoint over the predict split (--ckpt_path; data settings from the checkpoint)",
}


class CheckpointFileError(ValueError):
    """A ``--ckpt_path`` that is not a checkpoint which can be loaded safely (the message names the file)."""


def saved_data_settings(ckpt_path: str | Path | None) -> dict[str, Any]:
    """The DataModule arguments a checkpoint was trained with (``datamodule_hyper_parameters``), ``{}`` if none.

    Only arguments that :class:`DetectionDataModule` still takes are returned. Read with ``weights_only=True``.

    Raises:
        CheckpointFileError: naming ``ckpt_path`` when it cannot be unpickled safely or is not a dict.
    """
    if not ckpt_path or not Path(ckpt_path).is_file():
        return {}
    if not zipfile.is_zipfile(ckpt_path):  # what torch.save writes; torch.load(mmap=True) reads nothing else
        raise CheckpointFileError(
            f"--ckpt_path {ckpt_path} is not a checkpoint that can be loaded safely (not a torch.save zip archive)"
        )
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means "not a loadable checkpoint"
        raise CheckpointFileError(
            f"--ckpt_path {ckpt_path} is not a checkpoint that can be loaded safely ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointFileError(f"--ckpt_path {ckpt_path} is not a Lightning checkpoint (not a dict)")
    saved = checkpoint.get(DetectionDataModule.CHECKPOINT_HYPER_PARAMS_KEY) or {}
    known = inspect.signature(DetectionDataModule.__init__).parameters
    return {key: value for key, value in saved.items() if key in known and key != "self"}


class RetinaNetCLI(LightningCLI):
    """LightningCLI for :class:`RetinaNetModule` + :class:`DetectionDataModule`.

    ``num_classes``, ``class_names`` and ``category_ids`` of the model are linked from the data module; ``predict``
    writes its detections as COCO results with a :class:`COCOPredictionWriter` (added unless one is configured). An
    :class:`EvaluationPlots` callback (options ``--evaluation_plots.*``) writes PR curves and a confusion matrix after
    ``validate`` / ``test``. ``validate`` / ``test`` / ``predict`` with ``--ckpt_path`` start from the data settings
    saved in the checkpoint (the ``datamodule_hyper_parameters`` Lightning writes), so the split it was validated on is
    read again as it was; a ``--config`` or ``--data.*`` argument overrides them.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(EvaluationPlots, "evaluation_plots")
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.class_names", apply_on="instantiate")
        parser.link_arguments("data.category_ids", "model.category_ids", apply_on="instantiate")

    def before_predict(self) -> None:
        """``predict`` writes COCO results (``<log dir>/predict_results.json``) unless a writer is configured."""
        if not any(isinstance(c, COCOPredictionWriter) for c in self.trainer.callbacks):
            self.trainer.callbacks.append(COCOPredictionWriter(stages=("predict",)))

    def after_predict(self) -> None:
        for callback in self.trainer.callbacks:
            if isinstance(callback, COCOPredictionWriter) and callback.path is not None:
                print(f"Wrote COCO results to {callback.path}")

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
        num_train=args.num_train, num_val=args.num_val, accelerator=args.accelerator, overwrite=args.overwrite,
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
        image_size=args.image_size, seed=args.seed, overwrite=args.overwrite,
        objects_per_image=args.objects_per_image, shape_sizes=args.shape_sizes,
        crowd_probability=args.crowd_probability,
    )
    print(f"Wrote a {args.format.upper()}-layout shapes data set to {root}")
    return 0


def _detect(args: argparse.Namespace) -> int:
    from lightning_retina.detect import run_detect

    return run_detect(
        args.ckpt, args.images, out=args.out, score_thresh=args.score_thresh, device=args.device,
        batch_size=args.batch_size, max_pixels=args.max_pixels, overwrite=args.overwrite,
    )  # fmt: skip


def _export(args: argparse.Namespace) -> int:
    from lightning_retina.checkpoint import load_module
    from lightning_retina.export import export_model

    out = Path(args.out)
    if out.is_dir():
        raise SystemExit(f"lightning-retina export: error: --out {out} is a folder; name the file to write")
    if out.exists() and not args.overwrite:
        raise SystemExit(f"lightning-retina export: error: {out} exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    module = load_module(args.ckpt)
    size = tuple(args.image_size) if args.image_size else (module.hparams.min_size,) * 2
    export_model(module.model, args.format, out, size, args.batch_size)
    print(f"Wrote {args.format} model to {out} (input float32[{args.batch_size}, 3, {size[0]}, {size[1]}] in 0..1)")
    return 0


def _probability(text: str) -> float:
    """An argparse type: a number in [0, 1] (NaN refused)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}")
    return value


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _extra_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    parser = argparse.ArgumentParser(
        prog="lightning-retina",
        description="RetinaNet for PyTorch Lightning. `lightning-retina <command> --help` describes each command.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in LIGHTNING_COMMANDS:  # listed here, parsed by LightningCLI in main()
        sub.add_parser(command, help=_LIGHTNING_HELP[command], add_help=False)

    demo = sub.add_parser("demo", help="train a small detector on generated shapes (CPU, minutes) and draw it")
    demo.add_argument("--data-dir", default="data/shapes",
                      help="folder of the shapes data set: generated there when missing; must be new, empty or "
                           "written by make-shapes (never a folder of your own files)")
    demo.add_argument("--out", default="demo_out",
                      help="output folder for detections.png, training.png, metrics.json and model.ckpt: must be "
                           "new, empty or an earlier demo's output (see --overwrite)")
    demo.add_argument("--max-minutes", type=float, default=8.0, help="training time budget in minutes (> 0)")
    demo.add_argument("--alwa", action=argparse.BooleanOptionalAction, default=True,
                      help="use the ALWA callback (adaptive classification-loss weight)")
    demo.add_argument("--num-train", type=int, default=1500, help="training images to generate (>= 1)")
    demo.add_argument("--num-val", type=int, default=200, help="validation images to generate and evaluate (>= 1)")
    demo.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "gpu"),
                      help="where to train: auto picks a GPU when there is one; gpu fails without one")
    demo.add_argument("--overwrite", action="store_true",
                      help="write into --out even when it holds files the demo did not write (same names are "
                           "replaced); does not apply to --data-dir")

    shapes = sub.add_parser("make-shapes", help="write a VOC- or COCO-layout data set of drawn shapes")
    shapes.add_argument("root", help="output folder: must be new, empty or written by make-shapes (see --overwrite)")
    shapes.add_argument("--format", choices=("voc", "coco"), default="voc",
                        help="on-disk layout: voc (VOCdevkit/VOC2007/...) or coco (train/, val/, annotations/)")
    shapes.add_argument("--num-train", type=int, default=1500, help="images in the train split (>= 0)")
    shapes.add_argument("--num-val", type=int, default=200, help="images in the val split (>= 0)")
    shapes.add_argument("--image-size", type=int, default=256, help="side of the square images in pixels (>= 32)")
    shapes.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same files")
    shapes.add_argument("--objects-per-image", type=int, nargs=2, default=(1, 8), metavar=("MIN", "MAX"),
                        help="fewest and most shapes drawn on one image (default: 1 8)")
    shapes.add_argument("--shape-sizes", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                        help="smallest and largest side of a shape in pixels (default: 12-120 at 256 px, scaled "
                             "with --image-size)")
    shapes.add_argument("--crowd-probability", type=float, default=0.1,
                        help="chance that an image holds a crowd cluster annotated as one box (default: 0.1)")
    shapes.add_argument("--overwrite", action="store_true",
                        help="write into ROOT even when it holds files make-shapes did not write (files with the "
                             "same names, e.g. VOC's 000001.jpg, are replaced)")

    detect = sub.add_parser(
        "detect", help="run a checkpoint on images: one drawn PNG per image and detections.json (COCO results)",
        description="Run a trained checkpoint on images. Writes into --out one drawn PNG per image (named after the "
        "input's path relative to the inputs' common folder), detections.json (COCO results: image_id, file_name, "
        "drawn, category_id, category_name, bbox [x, y, w, h] in original pixels, score) and a manifest of what it "
        "wrote. Never overwrites an input, nor a file it did not write unless --overwrite. Unreadable images are "
        "reported and skipped (exit status 1); the others are processed.",
    )  # fmt: skip
    detect.add_argument("--ckpt", required=True, help="a checkpoint written by fit, demo or Trainer.save_checkpoint")
    detect.add_argument(
        "images", nargs="+",
        help="image files, folders (the images directly inside, sorted) and glob patterns ('photos/**/*.jpg')",
    )  # fmt: skip
    detect.add_argument(
        "--out", default="detections",
        help="output folder: new, empty or written by detect before (default: %(default)s)",
    )  # fmt: skip
    detect.add_argument(
        "--score-thresh", type=_probability, default=0.3,
        help="draw and write detections with at least this score, in [0, 1] (default: %(default)s)",
    )  # fmt: skip
    detect.add_argument(
        "--device", default="cpu", help="device to run on: cpu, cuda, cuda:1, mps (default: %(default)s)"
    )
    detect.add_argument(
        "--batch-size", type=_positive_int, default=8, help="images per forward pass (default: %(default)s)"
    )
    detect.add_argument(
        "--max-pixels", type=_positive_int, default=DEFAULT_MAX_PIXELS,
        help="refuse images with more pixels (width x height) than this, before decoding (default: %(default)s)",
    )  # fmt: skip
    detect.add_argument(
        "--overwrite", action="store_true",
        help="allow writing into a folder detect did not make and overwriting files there (never an input image)",
    )  # fmt: skip
    export = sub.add_parser(
        "export", help="write a checkpoint as ONNX, TorchScript or an ExportedProgram with our post-processing",
        description="Export a trained checkpoint. The exported model takes float32[B, 3, H, W] RGB images in 0..1 (B, "
        "H, W fixed here; normalisation, resizing and padding inside) and returns boxes [B, D, 4] (xyxy, input "
        "pixels), scores [B, D], labels [B, D] (-1 pads) and counts [B].",
    )  # fmt: skip
    export.add_argument("--ckpt", required=True, help="a checkpoint written by fit, demo or Trainer.save_checkpoint")
    export.add_argument("--format", required=True, choices=("onnx", "torchscript", "exported_program"),
                        help="onnx (opset 17, for ONNX Runtime), torchscript (torch.jit.load) or exported_program "
                             "(torch.export.load; name the file *.pt2)")  # fmt: skip
    export.add_argument("--out", required=True, help="the file to write (refused if it exists, see --overwrite)")
    export.add_argument("--image-size", type=_positive_int, nargs=2, metavar=("H", "W"),
                        help="input height and width (default: the model's min_size, square)")  # fmt: skip
    export.add_argument("--batch-size", type=_positive_int, default=1, help="images per call (default: %(default)s)")
    export.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    return parser, {"demo": _demo, "make-shapes": _make_shapes, "detect": _detect, "export": _export}


def _config_files(argv: Sequence[str]) -> list[Path]:
    """The existing files named by ``--config`` / ``-c`` (an inline YAML string is not a file)."""
    values = [b for a, b in zip(argv, argv[1:]) if a in ("--config", "-c")]
    values += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    return [Path(v) for v in values if Path(v).is_file()]


def _check_yaml(path: Path) -> None:
    """Raises ValueError naming ``path`` (and the line) when it is not valid YAML or not a mapping of options."""
    try:
        config = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{where}: malformed YAML config ({problem})") from err
    if config is not None and not isinstance(config, dict):
        kind = type(config).__name__
        raise ValueError(f"{path}: a config must be a YAML mapping of options (key: value), not a {kind}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lightning-retina`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_COMMANDS:
        try:
            for config in _config_files(argv):
                _check_yaml(config)
        except ValueError as error:
            print(f"lightning-retina {argv[0]}: error: {error}", file=sys.stderr)
            return 2
        try:
            RetinaNetCLI(RetinaNetModule, DetectionDataModule, args=argv, save_config_kwargs={"overwrite": True})
        except (FileNotFoundError, CheckpointFileError) as error:
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
