"""Issue 9: CE vs α-balanced CE vs focal loss, and ALWA on/off per box loss, on the synthetic shapes set.

Every run trains the demo's ResNet-18-FPN RetinaNet (GroupNorm head, AdamW, cosine lr over the time budget, bf16
where fast) from scratch for the same wall-clock budget on the same data set, then evaluates COCO mAP and mAP@0.5
on the val split. Results are kept per run, so a restart skips the finished runs. ``--steps N`` gives every run N
optimizer steps instead, with a cosine lr over the steps: the lr then no longer depends on the wall clock, so a seed's
run repeats exactly (two runs of the same 5-minute training differed by up to 0.078 mAP@0.5).

    python benchmarks/ablation.py --out ablation_out [--minutes 5 | --steps 450] [--fpn-channels 64] [--seeds 0 1]
        [--only cls|reg] [--extra-reg giou diou] [--alwa-step0 smooth_l1 ...] [--scale small|full] [--smoke]

Writes ``OUT/runs/<setting>-seed<k>.json`` (metrics, step count and per-step history of each run),
``OUT/ablation.md`` (mean ± std over seeds and the comparison with each group's baseline) and ``OUT/ablation.png``
(loss curves with and without ALWA for smooth-L1, and the ALWA weight).

The ALWA runs open their first window at the demo's ``alwa_start_step`` (200), a precaution against the from-scratch
transient of the first window. ``--alwa-step0`` adds, for the named box losses, an ALWA_2 run with the official first
window (step 0), to measure whether that precaution matters.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from tqdm.auto import tqdm

from benchmarks._timing import describe_machine
from lightning_retina.callbacks import ALWA, TrainingHistory
from lightning_retina.data import DetectionDataModule
from lightning_retina.demo import DemoConfig, build_demo_datamodule, build_demo_module, build_demo_trainer
from lightning_retina.losses.retinanet import REG_LOSSES
from lightning_retina.precision import fast_precision

CLS_LOSSES = ("bce", "balanced_bce", "focal")
BOX_LOSSES = ("l1", "smooth_l1", "ciou")
EXTRA_BOX_LOSSES = tuple(loss for loss in REG_LOSSES if loss not in BOX_LOSSES)
# α of the α-balanced CE: the best value for CE in Lin et al. 2017, Table 1a (31.1 AP); focal keeps α = 0.25.
BALANCED_BCE_ALPHA = 0.75
DATA_SEED = 0  # one data set for every run; the run seed drives initialisation, shuffling and augmentation


@dataclass(frozen=True)
class AlwaVariant:
    """How a run uses ALWA: its table label, the statistic (``None``: no ALWA) and the step of its first window
    (``None``: the recipe's ``alwa_start_step``)."""

    label: str
    statistic: str | None = None
    start_step: int | None = None


ALWA_VARIANTS = {
    "none": AlwaVariant("none"),
    "alwa1": AlwaVariant("ALWA_1 (mean+std)", "mean+std"),  # the paper's ALWA_1 and ALWA_2
    "alwa2": AlwaVariant("ALWA_2 (std)", "std"),
    "alwa2_step0": AlwaVariant("ALWA_2 (std), first window at step 0", "std", start_step=0),  # the official rule
}
BOX_LOSS_VARIANTS = ("none", "alwa1", "alwa2")  # every box loss; --alwa-step0 adds "alwa2_step0"


@dataclass(frozen=True)
class Recipe:
    """Data and model size of one ``--scale`` (``smoke`` is ``--smoke``): a demo config (its ``max_minutes`` is
    the training budget of each run) or, with ``max_steps`` (``--steps``, smoke mode), a step budget instead."""

    config: DemoConfig
    max_steps: int | None = None

    @property
    def minutes(self) -> float:
        return self.config.max_minutes


RECIPES = {
    # 64 FPN/head channels: in 5 minutes, 444-456 steps and mAP@0.5 0.49 (2 seeds) against 128 channels' 338 and 0.285
    "small": Recipe(DemoConfig(max_minutes=5.0, fpn_channels=64)),
    "full": Recipe(DemoConfig(num_train=4000, num_val=500, image_size=512, input_size=512, fpn_channels=256,
                              num_workers=8, max_minutes=10.0)),
    "smoke": Recipe(DemoConfig(num_train=8, num_val=4, image_size=64, input_size=64, batch_size=4, num_workers=0,
                               max_minutes=1.0), max_steps=1),
}  # fmt: skip


@dataclass(frozen=True)
class Setting:
    """One trained configuration: classification loss, box loss and ALWA variant (a key of ``ALWA_VARIANTS``)."""

    cls_loss: str
    reg_loss: str
    alwa: str = "none"

    @property
    def name(self) -> str:
        return f"{self.cls_loss}-{self.reg_loss}-{self.alwa}"


@dataclass(frozen=True)
class Group:
    """Rows of the table compared with one baseline (which is one of them)."""

    title: str
    settings: tuple[Setting, ...]
    baseline: Setting


def build_groups(
    only: str | None, extra_reg: Sequence[str], smoke: bool, alwa_step0: Sequence[str] = ()
) -> list[Group]:
    """The ablation's groups: classification losses (smooth-L1, no ALWA) and, per box loss, ALWA none/1/2
    (and ALWA_2 with its first window at step 0 for the box losses in ``alwa_step0``).

    ``focal-smooth_l1-none`` is both the classification baseline and the smooth-L1 baseline (trained once).
    The smoke groups hold two settings: ``focal-smooth_l1-none`` and ``focal-smooth_l1-alwa2``.
    """
    baseline = Setting("focal", "smooth_l1")
    if smoke:
        return [Group("classification loss", (baseline,), baseline),
                Group("box loss smooth_l1", (baseline, Setting("focal", "smooth_l1", "alwa2")), baseline)]  # fmt: skip
    groups = []
    if only in (None, "cls"):
        groups.append(Group("classification loss", tuple(Setting(c, "smooth_l1") for c in CLS_LOSSES), baseline))
    if only in (None, "reg"):
        for reg in (*BOX_LOSSES, *extra_reg):
            variants = (*BOX_LOSS_VARIANTS, "alwa2_step0") if reg in alwa_step0 else BOX_LOSS_VARIANTS
            settings = tuple(Setting("focal", reg, alwa) for alwa in variants)
            groups.append(Group(f"box loss {reg}", settings, settings[0]))
    return groups


# ------------------------------------------------------------------------------------------------------ runs
_QUIET_TRAINER = {"logger": False, "enable_checkpointing": False, "enable_model_summary": False,
                  "enable_progress_bar": False}  # fmt: skip  # the bar over runs is the only output


def train_and_evaluate(setting: Setting, seed: int, recipe: Recipe, datamodule: DetectionDataModule) -> dict[str, Any]:
    """Train one setting from scratch for the recipe's budget, then evaluate on the val split.

    Args:
        setting: losses and ALWA variant.
        seed: seed of initialisation, shuffling and augmentation.
        recipe: budget (``minutes``, or ``max_steps`` with its step lr schedule) and demo config.
        datamodule: the shapes data module, prepared and set up for ``"fit"``.

    Returns:
        ``map``, ``map_50``, ``steps``, ``train_seconds``, ``loss_weights`` (final) and ``history`` (per-step rows
        of :class:`TrainingHistory`: raw ``loss_cls``, ``loss_reg`` and the weights ``w_loss_cls``, ``w_loss_reg``).
    """
    config = recipe.config
    seed_everything(seed, workers=True, verbose=False)
    overrides: dict[str, Any] = {"cls_loss": setting.cls_loss, "reg_loss": setting.reg_loss, "metric": "coco"}
    if setting.cls_loss == "balanced_bce":
        overrides["focal_alpha"] = BALANCED_BCE_ALPHA
    module = build_demo_module(config, list(datamodule.class_names), max_steps=recipe.max_steps, **overrides)
    history = TrainingHistory()
    callbacks: list[Callback] = [history]
    alwa = alwa_callback(setting, config)
    if alwa is not None:
        callbacks.append(alwa)
    trainer = build_demo_trainer(config, callbacks, max_steps=recipe.max_steps, **_QUIET_TRAINER)
    precision = trainer.precision
    # the same generated images for every run; the run's seed sets the training order and the augmentations
    run_data = DetectionDataModule(**{**datamodule.hparams, "shuffle_seed": seed})
    run_data.setup("fit")
    started = time.monotonic()
    trainer.fit(module, train_dataloaders=run_data.train_dataloader())
    train_seconds = time.monotonic() - started
    # evaluated in float32, as the demo does: bf16 logits would tie scores and blur the ranking
    evaluator = Trainer(accelerator=config.accelerator, devices=1, precision="32-true", **_QUIET_TRAINER)
    metrics = evaluator.validate(module, dataloaders=datamodule.val_dataloader(), verbose=False)[0]
    return {
        "map": float(metrics["val/map"]),
        "map_50": float(metrics["val/map_50"]),
        "steps": trainer.global_step,
        "train_seconds": round(train_seconds, 1),
        "precision": precision,
        "loss_weights": dict(module.loss_weights),
        "history": history.rows,
    }


def alwa_callback(setting: Setting, config: DemoConfig) -> ALWA | None:
    """The ALWA callback of a setting (``None`` without ALWA): the config's interval, the variant's statistic, and
    the variant's first-window step or else the config's."""
    variant = ALWA_VARIANTS[setting.alwa]
    if variant.statistic is None:
        return None
    start_step = config.alwa_start_step if variant.start_step is None else variant.start_step
    return ALWA(interval=config.alwa_interval, statistic=variant.statistic, start_step=start_step)


def run_path(out: Path, setting: Setting, seed: int) -> Path:
    """Where the result of one run is kept."""
    return out / "runs" / f"{setting.name}-seed{seed}.json"


def load_finished(path: Path, recipe_record: dict[str, Any]) -> dict[str, Any] | None:
    """The saved result at ``path``, or ``None`` when the run has not finished.

    Raises:
        ValueError: If the run was made with another recipe (scale, budget or data), naming the file.
    """
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    if result.get("recipe") != recipe_record:
        raise ValueError(
            f"{path} was run with the recipe {result.get('recipe')}, not {recipe_record}; "
            "use another --out for another scale or budget"
        )
    return result


def recipe_record(recipe: Recipe) -> dict[str, Any]:
    """What makes runs comparable: the budget and every config field except the output paths and the seed."""
    per_run = ("data_dir", "out", "seed", "max_minutes", "alwa")
    config = {k: v for k, v in asdict(recipe.config).items() if k not in per_run}
    return {"minutes": recipe.minutes, "max_steps": recipe.max_steps, "config": config}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write through a temporary file, so an interrupted write never looks like a finished run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------------- report
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; ``nan`` for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def compare(values: Sequence[float], baseline: Sequence[float]) -> str:
    """The difference of the means, or ``"no difference"`` when it is below twice the larger seed std.

    Args:
        values: one metric of a setting, one value per seed.
        baseline: the same metric of the group's baseline.

    Returns:
        e.g. ``"+0.031"``, ``"no difference"``, or ``"n/a (1 seed)"`` when a std is undefined.
    """
    (mean, std), (base_mean, base_std) = mean_std(values), mean_std(baseline)
    if math.isnan(std) or math.isnan(base_std):
        return "n/a (1 seed)"
    diff = mean - base_mean
    return "no difference" if abs(diff) < 2 * max(std, base_std) else f"{diff:+.3f}"


def _cell(values: Sequence[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.3f} ± {'n/a' if math.isnan(std) else f'{std:.3f}'}"


def _per_seed(values: Sequence[float]) -> str:
    return " / ".join(f"{value:.3f}" for value in values)


def lowest_cls_weight(runs: Sequence[dict[str, Any]]) -> str:
    """The lowest ``w_loss_cls`` ALWA set in each run: whether (and how far) ALWA acted.

    Args:
        runs: saved results of one setting, one per seed, each with its per-step ``history``.

    Returns:
        e.g. ``"0.426 / 1.000"`` (``1.000``: ALWA never lowered the weight in that seed's run).
    """
    return _per_seed([min(row["w_loss_cls"] for row in run["history"]) for run in runs])


def format_table(groups: Sequence[Group], results: dict[tuple[str, int], dict[str, Any]], seeds: Sequence[int]) -> str:
    """The Markdown table: one row per setting of each group, mean ± std over ``seeds``.

    Besides the means, a row shows each seed's mAP@0.5 (a setting's effect in the same seed, where the seeds differ
    more than the settings) and the lowest classification weight its ALWA set in each seed (whether ALWA acted).
    """
    lines = [
        "| group | cls loss | box loss | ALWA | lowest w_cls per seed | steps (mean) | mAP | mAP@0.5 "
        "| mAP@0.5 per seed | mAP vs baseline | mAP@0.5 vs baseline |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for group in groups:
        base = [results[group.baseline.name, s] for s in seeds]
        for setting in group.settings:
            runs = [results[setting.name, s] for s in seeds]
            versus = ["baseline"] * 2 if setting == group.baseline else [
                compare([r[k] for r in runs], [r[k] for r in base]) for k in ("map", "map_50")
            ]  # fmt: skip
            cells = [
                group.title, setting.cls_loss, setting.reg_loss, ALWA_VARIANTS[setting.alwa].label,
                "–" if setting.alwa == "none" else lowest_cls_weight(runs),
                f"{statistics.fmean(r['steps'] for r in runs):.0f}",
                _cell([r["map"] for r in runs]), _cell([r["map_50"] for r in runs]),
                _per_seed([r["map_50"] for r in runs]), *versus,
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(
    path: Path, table: str, command: str, machine: str, recipe: Recipe, seeds: Sequence[int], precision: str
) -> None:
    """``ablation.md``: the table, the exact command, the machine and the recipe."""
    c = recipe.config
    budget = f"{recipe.max_steps} optimizer step(s)" if recipe.max_steps else f"{recipe.minutes:g} min of training"
    seed_list = ", ".join(map(str, seeds))
    text = f"""# Ablation (issue 9)

Command: `{command}`

Machine: {machine}; training precision {precision}.

Recipe: the demo's ResNet-18-FPN RetinaNet from scratch (GroupNorm head, {c.fpn_channels} FPN/head channels, AdamW
lr {c.lr:g}, cosine lr over the budget); {budget} per run; batch {c.batch_size}; {c.input_size}-px input; shapes
data set of {c.num_train} train and {c.num_val} val images of {c.image_size} px (VOC layout, generated once with
seed {DATA_SEED}); ALWA interval {c.alwa_interval}, first window after step {c.alwa_start_step}; balanced_bce with
α = {BALANCED_BCE_ALPHA:g} (Lin et al. 2017, Table 1a), focal with the module's α and γ; seeds
{seed_list}.

mAP is COCO mAP@[.5:.95], mAP@0.5 its IoU-0.5 value (torchmetrics `MeanAveragePrecision`, val split, float32),
mean ± sample std over the seeds. A difference from the group's baseline smaller than twice the larger of the two
seed stds is reported as "no difference". The per-seed columns list seeds {seed_list} in order:
each seed's mAP@0.5, and the lowest classification weight ALWA set in that run (1.000: ALWA never changed it).

{table}
"""
    path.write_text(text)


def plot_alwa_curves(histories: dict[str, list[dict[str, float]]], path: Path, title: str, smooth: int = 20) -> Path:
    """``ablation.png``: per-step raw ``loss_cls`` and ``loss_reg`` of each ALWA variant, and the ALWA weight.

    Args:
        histories: ALWA variant (key of ``ALWA_VARIANTS``) → :attr:`TrainingHistory.rows` of its run.
        path: the PNG to write.
        title: figure title.
        smooth: trailing moving-average window (steps) of the loss curves.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(7, 9), dpi=100, sharex=True)
    for alwa, rows in histories.items():
        steps = [r["step"] for r in rows]
        for ax, key in zip(axes, ("loss_cls", "loss_reg")):
            ax.plot(steps, _trailing_mean([r[key] for r in rows], smooth), label=ALWA_VARIANTS[alwa].label)
        axes[2].plot(steps, [r["w_loss_cls"] for r in rows], label=ALWA_VARIANTS[alwa].label)
    for ax, label in zip(axes, ("loss_cls (raw)", "loss_reg (raw)", "classification weight")):
        ax.set_ylabel(label)
        ax.legend()
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[2].set_ylim(0, 1.05)
    axes[2].set_xlabel("optimizer step")
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _trailing_mean(values: Sequence[float], window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each position (fewer at the start)."""
    sums = np.cumsum(np.concatenate(([0.0], np.asarray(values, dtype=np.float64))))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


# ------------------------------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (data, runs, ablation.md, ablation.png)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None, help="budget per run (default: 5 small, 10 full)")
    budget.add_argument("--steps", type=int, default=None,
                        help="a step budget per run instead (cosine lr over the steps: a seed's run repeats exactly)")
    parser.add_argument("--fpn-channels", type=int, default=None, help="FPN/head width (default: 64 small, 256 full)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--only", choices=("cls", "reg"), default=None, help="run one half of the ablation")
    parser.add_argument("--extra-reg", nargs="+", choices=EXTRA_BOX_LOSSES, default=[], help="more box losses")
    parser.add_argument("--alwa-step0", nargs="+", choices=REG_LOSSES, default=[],
                        help="box losses that also get a run of ALWA_2 with its first window at step 0")  # fmt: skip
    parser.add_argument("--scale", choices=("small", "full"), default="small", help="full: 512-px images, for a GPU")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator (cpu, gpu, auto)")
    parser.add_argument("--smoke", action="store_true",
                        help="1 step per run (or --steps), tiny data, first seed, 2 settings")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct, got {args.seeds}")
    box_losses_run = () if args.only == "cls" else (*BOX_LOSSES, *args.extra_reg)
    not_run = [reg for reg in args.alwa_step0 if reg not in box_losses_run]
    if not_run:
        parser.error(f"--alwa-step0 names box losses this ablation does not run: {not_run}")
    if args.fpn_channels is not None and args.fpn_channels <= 0:
        parser.error(f"--fpn-channels must be > 0, got {args.fpn_channels}")
    if args.minutes is not None and args.minutes <= 0:
        parser.error(f"--minutes must be > 0, got {args.minutes}")
    if args.steps is not None and args.steps <= 0:
        parser.error(f"--steps must be > 0, got {args.steps}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or resume) the ablation and write the table and the plot; returns the exit code."""
    args = parse_args(argv)
    recipe = RECIPES["smoke" if args.smoke else args.scale]
    options = {} if args.smoke else {"max_minutes": args.minutes, "fpn_channels": args.fpn_channels}  # smoke: fixed
    overrides = {key: value for key, value in options.items() if value is not None}
    config = replace(recipe.config, accelerator=args.accelerator, data_dir=str(args.out / "data"), **overrides)
    recipe = replace(recipe, config=config, max_steps=args.steps or recipe.max_steps)
    seeds = args.seeds[:1] if args.smoke else args.seeds
    groups = build_groups(args.only, args.extra_reg, args.smoke, args.alwa_step0)
    settings = list(dict.fromkeys(s for g in groups for s in g.settings))
    record = recipe_record(recipe)

    results: dict[tuple[str, int], dict[str, Any]] = {}
    pending: list[tuple[Setting, int]] = []
    for setting in settings:
        for seed in seeds:
            finished = load_finished(run_path(args.out, setting, seed), record)
            if finished is None:
                pending.append((setting, seed))
            else:
                results[setting.name, seed] = finished
                print(f"skipped {setting.name} seed {seed} (finished)")
    if pending:
        _train_pending(pending, args.out, recipe, record, results)

    command = shlex.join(["python", "benchmarks/ablation.py", *(sys.argv[1:] if argv is None else argv)])
    device = "cuda" if args.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"
    precision = fast_precision(recipe.config.accelerator)
    write_report(args.out / "ablation.md", format_table(groups, results, seeds), command, describe_machine(device),
                 recipe, seeds, precision)  # fmt: skip
    print(f"wrote {args.out / 'ablation.md'}")
    curves = {}
    for alwa in ALWA_VARIANTS:
        key = (Setting("focal", "smooth_l1", alwa).name, seeds[0])
        if key in results:
            curves[alwa] = results[key]["history"]
    if len(curves) > 1:
        title = f"focal + smooth_l1, seed {seeds[0]}: with and without ALWA"
        plot_alwa_curves(curves, args.out / "ablation.png", title)
        print(f"wrote {args.out / 'ablation.png'}")
    else:
        print("no smooth_l1 runs with and without ALWA (--only cls): ablation.png not written")
    return 0


def _train_pending(
    pending: list[tuple[Setting, int]],
    out: Path,
    recipe: Recipe,
    record: dict[str, Any],
    results: dict[tuple[str, int], dict[str, Any]],
) -> None:
    """Train the unfinished runs in order, saving each result as it finishes (a progress bar with an ETA)."""
    config = recipe.config
    datamodule = build_demo_datamodule(config, seed=DATA_SEED)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if recipe.max_steps:
        print(f"{len(pending)} run(s) to train, {recipe.max_steps} step(s) each plus evaluation")
    else:
        print(f"{len(pending)} run(s) to train, {recipe.minutes:g} min each plus evaluation: "
              f"at least {len(pending) * recipe.minutes:.0f} min")  # fmt: skip
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)  # no per-run "GPU available" / "max_time reached" lines under the bar
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")  # validation runs after training
            bar = tqdm(pending, desc="ablation", unit="run")
            for setting, seed in bar:
                bar.set_postfix_str(f"{setting.name} seed {seed}")
                result = train_and_evaluate(setting, seed, recipe, datamodule)
                result.update(setting=asdict(setting), seed=seed, recipe=record)
                _write_json(run_path(out, setting, seed), result)
                results[setting.name, seed] = result
                tqdm.write(f"{setting.name} seed {seed}: mAP {result['map']:.3f}, mAP@0.5 {result['map_50']:.3f}, "
                           f"{result['steps']} steps")  # fmt: skip
    finally:
        lightning_log.setLevel(level)


if __name__ == "__main__":
    raise SystemExit(main())
