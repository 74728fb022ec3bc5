"""benchmarks/ablation.py: the 1-step smoke run writes results, table and plot; a rerun skips finished runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.ablation import (
    RECIPES,
    Setting,
    alwa_callback,
    build_groups,
    compare,
    lowest_cls_weight,
    main,
    mean_std,
)
from lightning_retina.demo import WARMUP_STEPS, build_demo_module

SMOKE_RUNS = ("focal-smooth_l1-alwa2-seed0.json", "focal-smooth_l1-none-seed0.json")


@pytest.fixture(scope="module")
def smoke_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ablation")
    assert main(["--out", str(out), "--smoke"]) == 0
    return out


def _results(out: Path) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted((out / "runs").glob("*.json"))}


def test_smoke_saves_one_finished_result_per_run(smoke_out):
    results = _results(smoke_out)
    assert tuple(results) == SMOKE_RUNS
    for name, result in results.items():
        setting = result["setting"]
        assert name == f"{setting['cls_loss']}-{setting['reg_loss']}-{setting['alwa']}-seed{result['seed']}.json"
        assert result["steps"] == 1
        assert 0.0 <= result["map"] <= result["map_50"] <= 1.0
        (row,) = result["history"]  # one optimizer step, one row
        assert math.isfinite(row["loss_cls"]) and row["loss_cls"] > 0
        assert math.isfinite(row["loss_reg"]) and row["loss_reg"] > 0
        assert row["w_loss_cls"] == 1.0  # ALWA's first update comes after `interval` steps
    assert not list((smoke_out / "runs").glob("*.tmp"))


def test_table_has_a_row_per_setting_with_the_saved_metrics(smoke_out):
    text = (smoke_out / "ablation.md").read_text()
    assert "Command: `python benchmarks/ablation.py --out " in text and "--smoke`" in text
    assert "Machine: " in text
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    header, body = rows[0], rows[1:]
    assert header[:4] == ["group", "cls loss", "box loss", "ALWA"]
    assert [tuple(r[:4]) for r in body] == [
        ("classification loss", "focal", "smooth_l1", "none"),
        ("box loss smooth_l1", "focal", "smooth_l1", "none"),
        ("box loss smooth_l1", "focal", "smooth_l1", "ALWA_2 (std)"),
    ]
    results = _results(smoke_out)
    for row in body:
        alwa = "alwa2" if row[3].startswith("ALWA_2") else "none"
        saved = results[f"focal-smooth_l1-{alwa}-seed0.json"]
        mean_map, mean_map_50 = header.index("mAP"), header.index("mAP@0.5")
        assert row[mean_map] == f"{saved['map']:.3f} ± n/a"  # one seed: no std
        assert row[mean_map_50] == f"{saved['map_50']:.3f} ± n/a"
        assert row[header.index("mAP@0.5 per seed")] == f"{saved['map_50']:.3f}"
        lowest_weight = row[header.index("lowest w_cls per seed")]
        assert lowest_weight == ("–" if alwa == "none" else "1.000")  # one step: ALWA's first window never closed
        assert row[-2:] == (["baseline"] * 2 if alwa == "none" else ["n/a (1 seed)"] * 2)


def test_plot_is_a_png(smoke_out):
    assert (smoke_out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_runs(smoke_out, capsys):
    runs = sorted((smoke_out / "runs").glob("*.json"))
    before = {path: path.stat().st_mtime_ns for path in runs}
    assert main(["--out", str(smoke_out), "--smoke"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped") == len(SMOKE_RUNS)
    assert "to train" not in printed
    assert {path: path.stat().st_mtime_ns for path in runs} == before


def test_results_of_another_recipe_are_not_mixed_in(smoke_out):
    # the full ablation's smooth-L1 baseline has the smoke run's name but not its recipe
    with pytest.raises(ValueError, match="focal-smooth_l1-none-seed0.json"):
        main(["--out", str(smoke_out), "--only", "reg", "--seeds", "0"])


def test_alwa_variants_build_their_callback():
    config = RECIPES["small"].config
    assert config.alwa_start_step > 0
    assert alwa_callback(Setting("focal", "l1", "none"), config) is None
    expected = {"alwa1": ("mean+std", config.alwa_start_step), "alwa2": ("std", config.alwa_start_step),
                "alwa2_step0": ("std", 0)}  # fmt: skip
    for variant, (statistic, start_step) in expected.items():
        callback = alwa_callback(Setting("focal", "ciou", variant), config)
        assert (callback.statistic, callback.start_step) == (statistic, start_step)
        assert callback.interval == config.alwa_interval


def test_alwa_step0_adds_one_setting_to_the_named_box_losses():
    groups = {g.title: [s.alwa for s in g.settings] for g in build_groups("reg", (), False, ("smooth_l1",))}
    assert groups == {
        "box loss l1": ["none", "alwa1", "alwa2"],
        "box loss smooth_l1": ["none", "alwa1", "alwa2", "alwa2_step0"],
        "box loss ciou": ["none", "alwa1", "alwa2"],
    }


@pytest.mark.parametrize("argv", [["--alwa-step0", "giou"], ["--only", "cls", "--alwa-step0", "l1"]])
def test_alwa_step0_of_a_box_loss_not_run_is_a_usage_error(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    assert "--alwa-step0 names box losses this ablation does not run" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "--steps must be > 0, got 0"),
        (["--steps", "300", "--minutes", "5"], "not allowed with argument"),  # one budget or the other
    ],
)
def test_bad_step_budget_is_a_usage_error(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_step_budget_repeats_a_seeded_run_exactly(tmp_path):
    """With --steps the lr depends on the step only, so two runs of one seed give the same per-step losses (with the
    wall-clock schedule they part from step 2)."""
    histories = []
    for out in (tmp_path / "first", tmp_path / "second"):
        assert main(["--out", str(out), "--smoke", "--steps", "3"]) == 0
        result = json.loads((out / "runs" / "focal-smooth_l1-none-seed0.json").read_text())
        assert result["steps"] == 3
        histories.append(result["history"])
    assert histories[0] == histories[1]


def test_bad_fpn_channels_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), "--fpn-channels", "0"])
    assert exit_info.value.code == 2
    assert "--fpn-channels must be > 0, got 0" in capsys.readouterr().err


def test_mean_std_is_the_sample_std():
    values = [0.31, 0.35, 0.28]
    assert mean_std(values) == pytest.approx((np.mean(values), np.std(values, ddof=1)))
    assert math.isnan(mean_std([0.3])[1])


@pytest.mark.parametrize(
    ("values", "baseline", "expected"),
    [
        # means 0.31 vs 0.21, both stds 0.0141: 0.10 ≥ 2 × 0.0141
        ([0.30, 0.32], [0.20, 0.22], "+0.100"),
        # means 0.32 vs 0.29, larger std 0.0283: 0.03 < 2 × 0.0283
        ([0.30, 0.34], [0.28, 0.30], "no difference"),
        # worse by 0.05 with identical seeds (std 0)
        ([0.20, 0.20], [0.25, 0.25], "-0.050"),
        # the larger std is the baseline's (0.0707): 0.10 < 0.141
        ([0.40, 0.40], [0.25, 0.35], "no difference"),
        ([0.40], [0.30], "n/a (1 seed)"),
    ],
)
def test_compare_reports_no_difference_below_twice_the_larger_std(values, baseline, expected):
    assert compare(values, baseline) == expected


def test_lowest_cls_weight_is_the_minimum_alwa_set_in_each_run():
    acted = {"history": [{"w_loss_cls": w} for w in (1.0, 0.6, 0.85)]}  # lowered at one window, raised again
    never = {"history": [{"w_loss_cls": 1.0}] * 3}
    assert lowest_cls_weight([acted, never]) == "0.600 / 1.000"


def test_step_budget_module_runs_its_own_warmup_and_cosine():
    """The trainer drops TimeBudgetLR for a step budget, so the module must bring the schedule itself."""
    config = RECIPES["smoke"].config
    stepped = build_demo_module(config, ["a", "b"], max_steps=10).hparams
    timed = build_demo_module(config, ["a", "b"]).hparams
    assert (stepped.lr_schedule, stepped.warmup_steps) == ("cosine", WARMUP_STEPS)
    assert stepped.warmup_factor == 1 / WARMUP_STEPS
    assert (timed.lr_schedule, timed.warmup_steps) == ("constant", 0)  # TimeBudgetLR sets the lr
