"""``python -m benchmarks.ablation``: run (or resume) the paired ablation and write its report and figure."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from benchmarks._timing import describe_machine
from benchmarks.ablation.pretrain import PretrainSettings, pretrain_backbone
from benchmarks.ablation.report import Results, format_table, plot_runs, spreads, write_report
from benchmarks.ablation.runs import Recipe, load_finished, run_path, train_and_evaluate, write_json
from benchmarks.ablation.settings import BASELINE, Setting, build_groups, unique_settings
from lightning_retina.demo import DemoConfig, build_demo_datamodule
from lightning_retina.output_folder import claim_output_folder
from lightning_retina.precision import fast_precision

RECIPES = {
    # CPU: 96-px images with 1-4 shapes of 20-48 px and no crowds, anchors twice the stride (each object overlaps
    # several anchors at IoU >= 0.5), a backbone pretrained once, AdamW 1e-3 (2e-3 and 4e-3 climbed slower: most of
    # their gain came as the cosine lowered the lr), a short cosine schedule: the baseline plateaus
    "small": Recipe(DemoConfig(num_train=1500, num_val=200, image_size=96, input_size=96, fpn_channels=64,
                               batch_size=16, lr=1e-3, num_workers=1, alwa_interval=50), max_steps=400, eval_every=50,
                    pretrain=PretrainSettings(steps=300),
                    data_options={"shapes_objects_per_image": (1, 4), "shapes_shape_sizes": (20, 48),
                                  "shapes_crowd_probability": 0.0},
                    model_options={"anchor_sizes": (16, 32, 64, 128, 256)}),
    # GPU: the demo's images at 512 px, full width
    "full": Recipe(DemoConfig(num_train=4000, num_val=500, image_size=512, input_size=512, fpn_channels=256,
                              batch_size=16, num_workers=8, alwa_interval=100), max_steps=3000, eval_every=250,
                   pretrain=PretrainSettings(backbone="resnet18", steps=3000)),
    "smoke": Recipe(DemoConfig(num_train=8, num_val=4, image_size=64, input_size=64, batch_size=4, num_workers=0,
                               alwa_interval=2), max_steps=2, eval_every=1, pretrain=PretrainSettings(steps=1)),
}  # fmt: skip

#: The ablation's marker in ``--out``: a folder holding it was made by the ablation and may be written (resumed) again.
OUT_MARKER = "ablation-out.json"
WRITER = "python -m benchmarks.ablation"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablation", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output folder (data, backbone, runs, report, figure)")
    parser.add_argument("--scale", choices=("small", "full"), default="small", help="small: a 2-core CPU; full: a GPU")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default: the scale's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="paired seeds (at least 2)")
    parser.add_argument("--only", choices=("baseline", "cls", "reg", "gamma"), default=None,
                        help="run one group; baseline: the baseline's seeds and repeat only (does the recipe converge?)")
    parser.add_argument("--no-gamma", action="store_true", help="leave out the focal γ sweep")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator (cpu, gpu, auto)")
    parser.add_argument("--smoke", action="store_true", help="2 steps per run, tiny data, 2 settings (the test)")
    parser.add_argument("--overwrite", action="store_true", help="write into an --out that holds other files")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct, got {args.seeds}")
    if len(args.seeds) < 2 and not args.smoke:
        parser.error("--seeds: a paired interval needs at least 2 seeds")
    if args.steps is not None and args.steps <= 0:
        parser.error(f"--steps must be > 0, got {args.steps}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or resume) the ablation and write ``OUT/ablation.md`` and ``OUT/ablation.png``; returns the exit code."""
    args = parse_args(argv)
    try:  # before anything is written: a folder of the user's is refused, ours (its marker) is resumed
        claim_output_folder(args.out, OUT_MARKER, WRITER, overwrite=args.overwrite, option="--overwrite")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    recipe = RECIPES["smoke" if args.smoke else args.scale]
    config = replace(recipe.config, accelerator=args.accelerator, data_dir=str(args.out / "data"))
    steps = args.steps or recipe.max_steps
    recipe = replace(recipe, config=config, max_steps=steps, eval_every=min(recipe.eval_every, steps))
    groups = build_groups(args.only, gamma_sweep=not args.no_gamma, smoke=args.smoke)
    seeds = args.seeds[:2] if args.smoke else args.seeds
    record = recipe.record()
    # the baseline first (its plateau is the recipe's check), then every other (setting, seed) group by group, and
    # last the baseline once more for the first seed (the run-to-run spread, 0 when runs repeat exactly): a grid
    # stopped early has its comparisons, and `--only baseline` still checks a recipe with 4 runs
    others = [(s, seed, 0) for s in unique_settings(groups) if s != BASELINE for seed in seeds]
    plan = [*((BASELINE, seed, 0) for seed in seeds), *others, (BASELINE, seeds[0], 1)]

    try:  # a saved run of another recipe, or one that is not a run result, is refused before anything is trained
        results, repeats, pending = _load_finished_runs(plan, args.out, record)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(plan) - len(pending)} of {len(plan)} run(s) finished earlier; {len(pending)} to train, "
          f"{steps} steps each plus evaluations")  # fmt: skip

    datamodule = build_demo_datamodule(config, seed=recipe.data_seed, **recipe.data_options)
    datamodule.prepare_data()
    datamodule.setup("fit")
    precision = fast_precision(config.accelerator)
    backbone, pretrained = None, None
    if recipe.pretrain is not None:
        backbone = args.out / "backbone" / f"{recipe.pretrain.backbone}.pt"
        pretrained = pretrain_backbone(datamodule, recipe.pretrain, backbone, precision)
    if pending:
        _train_pending(pending, args.out, recipe, record, datamodule, backbone, results, repeats)

    command = shlex.join(["python", "-m", "benchmarks.ablation", *(sys.argv[1:] if argv is None else argv)])
    device = "cuda" if args.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"
    tables = format_table(groups, results, seeds) + "\n" + format_table(groups, results, seeds, key="map")
    write_report(args.out / "ablation.md", tables, spreads(results, seeds, repeats, steps), command,
                 describe_machine(device), recipe, seeds, precision, pretrained)  # fmt: skip
    plot_runs(results, seeds, args.out / "ablation.png")
    print(f"wrote {args.out / 'ablation.md'} and {args.out / 'ablation.png'}")
    return 0


def _load_finished_runs(
    plan: list[tuple[Setting, int, int]], out: Path, record: dict[str, Any]
) -> tuple[Results, dict[int, dict[str, Any]], list[tuple[Setting, int, int]]]:
    """The plan's runs saved in ``out``: results by (setting name, seed), repeats by seed, and the runs still to train.

    Raises:
        ValueError: naming the file, when a saved run is not a run result or was run with another recipe.
    """
    results: Results = {}
    repeats: dict[int, dict[str, Any]] = {}
    pending = []
    for setting, seed, repeat in plan:
        finished = load_finished(run_path(out, setting, seed, repeat), record)
        if finished is None:
            pending.append((setting, seed, repeat))
        else:
            (repeats if repeat else results)[seed if repeat else (setting.name, seed)] = finished
    return results, repeats, pending


def _train_pending(
    pending: list[tuple[Setting, int, int]],
    out: Path,
    recipe: Recipe,
    record: dict[str, Any],
    datamodule: Any,
    backbone: Path | None,
    results: Results,
    repeats: dict[int, dict[str, Any]],
) -> None:
    """Train the unfinished runs in order, saving each result as it finishes (a progress bar with an ETA)."""
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)  # no per-run "GPU available" lines under the bar
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")  # evaluated by a callback
            bar = tqdm(pending, desc="ablation", unit="run")
            for setting, seed, repeat in bar:
                bar.set_postfix_str(f"{setting.name} seed {seed}" + (" (repeat)" if repeat else ""))
                result = train_and_evaluate(setting, seed, recipe, datamodule, backbone)
                result.update(setting=asdict(setting), seed=seed, repeat=repeat, recipe=record)
                write_json(run_path(out, setting, seed, repeat), result)
                (repeats if repeat else results)[seed if repeat else (setting.name, seed)] = result
                tqdm.write(f"{setting.name} seed {seed}{' (repeat)' if repeat else ''}: mAP {result['map']:.3f}, "
                           f"mAP@0.5 {result['map_50']:.3f}")  # fmt: skip
    finally:
        lightning_log.setLevel(level)
