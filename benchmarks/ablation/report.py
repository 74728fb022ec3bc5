"""The ablation's Markdown report (paired table, spreads, plateau) and its figure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.ablation.runs import Recipe
from benchmarks.ablation.settings import BALANCED_BCE_ALPHA, BASELINE, Group, Setting
from benchmarks.ablation.stats import mean_std, paired_difference
from lightning_retina.callbacks.history import trailing_mean

Results = dict[tuple[str, int], dict[str, Any]]


def plateau_change(evaluations: Sequence[dict[str, float]], max_steps: int, key: str = "map_50") -> float:
    """The largest change of ``key`` between evaluations in the last 25 % of the steps (from the last evaluation at
    or before 75 % of ``max_steps`` to the end): ``max - min`` over those evaluations.

    Raises:
        ValueError: when no evaluation lies at or before 75 % of the steps, or none after it.
    """
    start = 0.75 * max_steps
    before = [row for row in evaluations if row["step"] <= start]
    after = [row for row in evaluations if row["step"] > start]
    if not before or not after:
        raise ValueError(f"need evaluations at or before step {start:g} and after it, got {[r['step'] for r in evaluations]}")
    values = [before[-1][key], *(row[key] for row in after)]
    return max(values) - min(values)


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.3f}"


def format_table(groups: Sequence[Group], results: Results, seeds: Sequence[int], key: str = "map_50") -> str:
    """One Markdown table per group: each setting's ``key`` per seed and its paired difference with the baseline.

    Columns: the setting (with ALWA: the lowest classification weight it set in each seed, 1.00 = never acted),
    the metric per seed, its mean, the difference per seed, their mean, the 95 % t interval
    the verdict (``no difference`` when the interval holds 0) and, per seed, how much the metric still moved over
    the run's last 25 % of steps (:func:`plateau_change`: is the setting's run on a plateau too?).
    """
    seed_list = " / ".join(str(s) for s in seeds)
    lines = []
    for group in groups:
        lines += [f"**{group.title}** ({key}; seeds {seed_list})", "",
                  f"| setting | {key} per seed | mean | − baseline per seed | mean difference | 95 % interval | verdict "
                  "| last-25 % change per seed |", "|---|---:|---:|---:|---:|---:|---|---:|"]  # fmt: skip
        base = [results[group.baseline.name, s][key] for s in seeds]
        for setting in group.settings:
            values = [results[setting.name, s][key] for s in seeds]
            label = setting.label + (" (baseline)" if setting == group.baseline else "")
            if setting.alwa != "none":  # whether, and how far, ALWA acted in each seed
                lowest = [min(row["w_loss_cls"] for row in results[setting.name, s]["history"]) for s in seeds]
                label += "; lowest w_cls " + " / ".join(f"{w:.2f}" for w in lowest)
            cells = [label,
                     " / ".join(f"{v:.3f}" for v in values), f"{mean_std(values)[0]:.3f}"]  # fmt: skip
            if setting == group.baseline:
                cells += ["–", "–", "–", "–"]
            else:
                diff = paired_difference(values, base)
                cells += [" / ".join(f"{d:+.3f}" for d in diff.per_seed), _fmt(diff.mean),
                          f"[{_fmt(diff.low)}, {_fmt(diff.high)}]", diff.verdict]  # fmt: skip
            runs = [results[setting.name, s] for s in seeds]
            cells.append(" / ".join(f"{plateau_change(r['evaluations'], r['steps'], key):.3f}" for r in runs))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def spreads(results: Results, seeds: Sequence[int], repeats: dict[int, dict[str, Any]], max_steps: int) -> str:
    """The baseline's seed-to-seed spread, its run-to-run spread (a repeated seed) and its plateau."""
    base = [results[BASELINE.name, s] for s in seeds]
    lines = []
    for key in ("map_50", "map"):
        mean, std = mean_std([r[key] for r in base])
        lines.append(f"- Baseline {key}: mean {mean:.3f}, seed-to-seed sample std {std:.3f} "
                     f"(min {min(r[key] for r in base):.3f}, max {max(r[key] for r in base):.3f}).")  # fmt: skip
    for seed, rerun in repeats.items():
        first = results[BASELINE.name, seed]
        same = first["history"] == rerun["history"]
        lines.append(f"- Run-to-run: seed {seed} trained twice: mAP@0.5 {first['map_50']:.4f} vs {rerun['map_50']:.4f}, "
                     f"mAP {first['map']:.4f} vs {rerun['map']:.4f}; per-step losses identical: {same}.")  # fmt: skip
    changes = [plateau_change(r["evaluations"], max_steps) for r in base]
    lines.append("- Plateau: largest change of the baseline's val mAP@0.5 over the last 25 % of the steps, per seed: "
                 + " / ".join(f"{c:.3f}" for c in changes) + " (the target: < 0.02).")  # fmt: skip
    return "\n".join(lines)


def write_report(path: Path, tables: str, spread_text: str, command: str, machine: str, recipe: Recipe,
                 seeds: Sequence[int], precision: str, pretrain_result: dict[str, float] | None) -> None:  # fmt: skip
    """``ablation.md``: what ran, the spreads and the paired tables."""
    c = recipe.config
    pretrain = "none: every run from scratch" if recipe.pretrain is None else (
        f"{recipe.pretrain.backbone} pretrained once on the training images' image-level labels (multi-label BCE, "
        f"{recipe.pretrain.steps} steps, seed {recipe.pretrain.seed}; val exact-match "
        f"{pretrain_result['val_exact_match']:.3f}), frozen BN, last three stages trained, new FPN and head per run")
    drawing = "".join(f", {k.removeprefix('shapes_')} {v}" for k, v in recipe.data_options.items())
    anchors = recipe.model_options.get("anchor_sizes")
    anchors = "the demo's anchors" if anchors is None else f"anchor sizes {', '.join(map(str, anchors))} px on P3–P7"
    text = f"""# Ablation: paired runs on a fixed step budget

Command: `{command}`

Machine: {machine}; training precision {precision}.

Recipe: RetinaNet, backbone {pretrain}; GroupNorm head, {c.fpn_channels} FPN/head channels; AdamW lr {c.lr:g}, 50-step
warm-up then a cosine to 0 over {recipe.max_steps} steps; batch {c.batch_size}; {c.input_size}-px input; shapes data set of
{c.num_train} train and {c.num_val} val images of {c.image_size} px (generated once, seed {recipe.data_seed}{drawing});
{anchors}; val evaluated every {recipe.eval_every} steps. ALWA: the official rule (ALWA_2, sample std, first window at step 0),
interval {c.alwa_interval}. balanced_bce: α = {BALANCED_BCE_ALPHA:g} (Lin et al. 2017, Table 1a) — with γ = 0 it is the
focal loss's γ = 0 row. Seeds {", ".join(map(str, seeds))}: a seed fixes the FPN/head initialisation, the data order
and the augmentations for every setting, so each setting is compared with the baseline (focal α 0.25 γ 2 +
smooth-L1, no ALWA) seed by seed: per-seed differences, their mean and its 95 % Student-t interval; "no difference"
when the interval contains 0.

mAP is COCO mAP@[.5:.95], mAP@0.5 its IoU-0.5 value (torchmetrics `MeanAveragePrecision`, val split, float32).

## Spread of the baseline

{spread_text}

## Paired differences

{tables}
"""
    path.write_text(text)


def plot_runs(results: Results, seeds: Sequence[int], path: Path, smooth: int = 20) -> Path:
    """``ablation.png``: the baseline's val mAP@0.5 over steps (each seed), and for smooth-L1 without and with ALWA
    (first seed) the raw ``loss_cls``, ``loss_reg`` and the ALWA classification weight over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(7, 11), dpi=100, sharex=True)
    for seed in seeds:
        rows = results[BASELINE.name, seed]["evaluations"]
        axes[0].plot([r["step"] for r in rows], [r["map_50"] for r in rows], marker="o", label=f"seed {seed}")
    axes[0].set_ylabel("baseline val mAP@0.5")
    for setting in (BASELINE, Setting("focal", "smooth_l1", "alwa")):
        run = results.get((setting.name, seeds[0]))
        if run is None:
            continue
        rows = run["history"]
        steps = [r["step"] for r in rows]
        for ax, key in zip(axes[1:3], ("loss_cls", "loss_reg")):
            ax.plot(steps, trailing_mean([r[key] for r in rows], smooth), label=setting.label)
        axes[3].plot(steps, [r["w_loss_cls"] for r in rows], label=setting.label)
    for ax, label in zip(axes[1:], ("loss_cls (raw)", "loss_reg (raw)", "ALWA weight w_cls")):
        ax.set_ylabel(label)
    for ax in axes:
        ax.legend(fontsize=8)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    axes[3].set_ylim(0, 1.05)
    axes[3].set_xlabel("optimizer step")
    axes[0].set_title(f"ablation: baseline mAP over steps; smooth-L1 with and without ALWA (seed {seeds[0]})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

