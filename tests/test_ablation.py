"""benchmarks/ablation: the smoke run writes paired results, report and figure; runs repeat exactly; the paired
statistics and the plateau check against hand-derived values and a t table."""

from __future__ import annotations

import json
import math
import multiprocessing
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from lightning.pytorch import seed_everything

from benchmarks.ablation.cli import RECIPES, main
from benchmarks.ablation.report import format_table, plateau_change
from benchmarks.ablation.runs import alwa_callback, load_finished, recipe_differences, run_path, train_and_evaluate
from benchmarks.ablation.settings import BALANCED_BCE_ALPHA, BASELINE, Setting, build_groups, unique_settings
from benchmarks.ablation.stats import paired_difference, student_t_quantile
from lightning_retina.demo import WARMUP_STEPS, build_demo_datamodule, build_demo_module
from lightning_retina.losses.retinanet import RetinaNetLoss

KEPT = Path(__file__).parents[1] / "benchmarks" / "results" / "ablation-small-96px"  # the measured grid and γ sweep
SMOKE_RUNS = ("focal-smooth_l1-alwa-seed0.json", "focal-smooth_l1-alwa-seed1.json", "focal-smooth_l1-none-seed0-repeat1.json",
              "focal-smooth_l1-none-seed0.json", "focal-smooth_l1-none-seed1.json")  # fmt: skip


@pytest.fixture(scope="module")
def smoke_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ablation")
    assert main(["--out", str(out), "--smoke"]) == 0
    return out


def _results(out: Path) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted((out / "runs").glob("*.json"))}


def test_smoke_saves_one_finished_result_per_run_with_evaluations_along_it(smoke_out):
    results = _results(smoke_out)
    assert tuple(results) == SMOKE_RUNS
    for result in results.values():
        assert result["steps"] == RECIPES["smoke"].max_steps == 2
        assert [row["step"] for row in result["evaluations"]] == [1.0, 2.0]  # eval_every 1
        assert (result["map"], result["map_50"]) == (result["evaluations"][-1]["map"], result["evaluations"][-1]["map_50"])
        assert all(math.isfinite(row["loss_cls"]) and row["loss_cls"] > 0 for row in result["history"])
    assert not list((smoke_out / "runs").glob("*.tmp"))
    record = json.loads((smoke_out / "backbone" / "resnet18.pt.json").read_text())
    assert record["settings"]["steps"] == 1 and 0 <= record["result"]["val_exact_match"] <= 1


def test_a_repeated_seed_trains_exactly_the_same(smoke_out):
    results = _results(smoke_out)
    first, again = results["focal-smooth_l1-none-seed0.json"], results["focal-smooth_l1-none-seed0-repeat1.json"]
    assert first["history"] == again["history"] and first["evaluations"] == again["evaluations"]
    other_seed = results["focal-smooth_l1-none-seed1.json"]
    assert other_seed["history"][0]["loss_cls"] != first["history"][0]["loss_cls"]  # the seed does change the run


def test_report_pairs_each_setting_with_the_baseline(smoke_out):
    text = (smoke_out / "ablation.md").read_text()
    assert "Command: `python -m benchmarks.ablation --out " in text and "--smoke`" in text
    runs = _results(smoke_out)
    alwa = [runs[f"focal-smooth_l1-alwa-seed{s}.json"]["map_50"] for s in (0, 1)]
    base = [runs[f"focal-smooth_l1-none-seed{s}.json"]["map_50"] for s in (0, 1)]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    alwa_row = next(r for r in rows if r[0].startswith("focal + smooth_l1 + ALWA"))
    assert alwa_row[1] == " / ".join(f"{v:.3f}" for v in alwa)
    assert alwa_row[3] == " / ".join(f"{a - b:+.3f}" for a, b in zip(alwa, base))
    assert "Run-to-run: seed 0 trained twice" in text and "per-step losses identical: True" in text
    assert (smoke_out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_runs_and_another_recipe_is_refused(smoke_out, capsys):
    before = {p: p.stat().st_mtime_ns for p in (smoke_out / "runs").glob("*.json")}
    assert main(["--out", str(smoke_out), "--smoke"]) == 0
    assert "5 of 5 run(s) finished earlier; 0 to train" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in before} == before
    capsys.readouterr()
    assert main(["--out", str(smoke_out), "--smoke", "--steps", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "focal-smooth_l1-none-seed0.json was run with the recipe" in err
    assert "recipe's max_steps=2, not 3; use another --out" in err  # what differs, not both records
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing rewritten


def test_only_baseline_trains_the_baseline_seeds_and_repeat_and_reports_its_plateau(tmp_path):
    assert main(["--out", str(tmp_path), "--smoke", "--only", "baseline"]) == 0
    assert tuple(_results(tmp_path)) == tuple(name for name in SMOKE_RUNS if "-none-" in name)
    text = (tmp_path / "ablation.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| focal")]
    assert len(rows) == 2 and all("(baseline)" in row for row in rows)  # mAP@0.5 and mAP tables: one row each
    assert "- Plateau: largest change of the baseline's val mAP@0.5" in text


def test_a_folder_of_the_users_is_refused_before_anything_is_written(tmp_path, capsys):
    (tmp_path / "ablation.md").write_text("my notes")
    assert main(["--out", str(tmp_path), "--smoke"]) == 2
    err = capsys.readouterr().err
    assert "already holds files" in err and "ablation.md" in err and "--overwrite" in err
    assert [p.name for p in tmp_path.iterdir()] == ["ablation.md"] and (tmp_path / "ablation.md").read_text() == "my notes"


def test_a_run_with_loader_workers_leaves_no_worker_process_behind(tmp_path):
    """The next run forks its own workers: one left over from this run printed "can only test a child process"."""
    smoke = RECIPES["smoke"]
    recipe = replace(smoke, config=replace(smoke.config, num_workers=1, data_dir=str(tmp_path)), pretrain=None)
    datamodule = build_demo_datamodule(recipe.config, seed=recipe.data_seed, **recipe.data_options)
    datamodule.prepare_data()
    datamodule.setup("fit")
    before = set(multiprocessing.active_children())
    result = train_and_evaluate(BASELINE, 0, recipe, datamodule, None)
    assert result["steps"] == recipe.max_steps
    assert set(multiprocessing.active_children()) - before == set()


@pytest.mark.parametrize(("text", "message"), [("{bad", "is not a readable run result"), ("[1]", "holds a JSON list")])
def test_a_corrupt_run_file_is_refused_naming_it(tmp_path, text, message):
    path = tmp_path / "run.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"run.json {message}"):
        load_finished(path, RECIPES["smoke"].record())


def test_a_run_of_another_recipe_is_refused_naming_each_nested_value_that_differs(tmp_path):
    record = RECIPES["smoke"].record()
    other = {**record, "config": {**record["config"], "lr": 0.5}, "data_options": {"shapes_crowd_probability": 0.0}}
    assert recipe_differences(other, record) == [
        "config.lr=0.5, not 0.002",
        "data_options.shapes_crowd_probability=0.0, not None",
    ]
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"recipe": other}))
    with pytest.raises(ValueError, match=r"run.json was run with the recipe's config.lr=0.5, not 0.002; data_options"):
        load_finished(path, record)


def test_the_kept_report_tables_follow_from_the_kept_run_results():
    """benchmarks/README.md quotes the kept report: its tables must be what its 34 saved runs give."""
    groups, seeds = build_groups(), (0, 1, 2)
    results = {}
    for setting in unique_settings(groups):
        for seed in seeds:
            result = load_finished(run_path(KEPT, setting, seed), RECIPES["small"].record())
            assert result is not None, run_path(KEPT, setting, seed)
            results[setting.name, seed] = result
    report = (KEPT / "ablation.md").read_text()
    for key in ("map_50", "map"):
        assert format_table(groups, results, seeds, key=key) in report


def test_a_seed_fixes_the_initial_weights_for_every_setting():
    """Paired runs: the losses do not change the initial FPN/head weights of a seed."""
    config = RECIPES["smoke"].config
    states = []
    for setting in (BASELINE, Setting("bce", "ciou"), Setting("focal", "l1", gamma=5.0, alpha=0.25)):
        seed_everything(3, verbose=False)
        module = build_demo_module(config, ["a", "b"], max_steps=2, **setting.module_overrides())
        states.append(module.state_dict())
    for state in states[1:]:
        assert state.keys() == states[0].keys()
        assert all(torch.equal(state[k], states[0][k]) for k in state)


def test_balanced_bce_is_the_gamma_0_row_of_the_sweep():
    """Both reach the same dense focal loss with α 0.75 and γ 0 (RetinaNetLoss keeps one code path)."""
    balanced = RetinaNetLoss(cls_loss="balanced_bce", focal_alpha=BALANCED_BCE_ALPHA)
    focal0 = RetinaNetLoss(cls_loss="focal", focal_alpha=BALANCED_BCE_ALPHA, focal_gamma=0.0)
    assert (balanced.alpha, balanced.gamma) == (focal0.alpha, focal0.gamma) == (0.75, 0.0)
    sweep = build_groups("gamma")[0].settings
    assert sweep[0] == Setting("balanced_bce", "smooth_l1") and BASELINE in sweep
    assert [s.gamma for s in sweep] == [None, 0.5, 1.0, None, 5.0]  # None: the loss's own γ (0 and 2)


def test_the_grid_trains_each_setting_once():
    settings = unique_settings(build_groups())
    assert len(settings) == 11 and len(set(settings)) == 11
    assert {s.cls_loss for s in settings} == {"bce", "balanced_bce", "focal"}
    assert {(s.reg_loss, s.alwa) for s in settings if s.gamma is None and s.cls_loss == "focal"} == {
        (reg, alwa) for reg in ("l1", "smooth_l1", "ciou") for alwa in ("none", "alwa")
    }


def test_alwa_runs_use_the_official_rule():
    config = RECIPES["small"].config
    assert alwa_callback(BASELINE, config) is None
    alwa = alwa_callback(Setting("focal", "ciou", "alwa"), config)
    assert (alwa.statistic, alwa.start_step, alwa.interval) == ("std", 0, config.alwa_interval)


@pytest.mark.parametrize(("df", "table"), [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045)])
def test_t_quantile_matches_the_t_table(df, table):
    assert student_t_quantile(0.975, df) == pytest.approx(table, abs=6e-4)


def test_paired_difference_by_hand():
    # differences 0.10, 0.15, 0.05: mean 0.10, sd 0.05, half width 4.3027 * 0.05 / sqrt(3) = 0.12421
    diff = paired_difference([0.50, 0.60, 0.55], [0.40, 0.45, 0.50])
    assert diff.per_seed == pytest.approx((0.10, 0.15, 0.05))
    assert (diff.mean, diff.low, diff.high) == pytest.approx((0.10, 0.10 - 0.12421, 0.10 + 0.12421), abs=1e-4)
    assert diff.verdict == "no difference"
    assert paired_difference([0.50, 0.61, 0.72], [0.40, 0.50, 0.60]).verdict == "better"  # 0.10, 0.11, 0.12
    assert paired_difference([0.3, 0.3], [0.4, 0.4]).verdict == "worse"  # sd 0: the interval is the point -0.1
    assert paired_difference([0.4], [0.3]).verdict == "n/a (1 seed)"
    with pytest.raises(ValueError, match="one value per seed"):
        paired_difference([0.4, 0.5], [0.3])


def test_plateau_change_is_the_range_over_the_last_quarter():
    rows = [{"step": s, "map_50": v} for s, v in ((100, 0.2), (300, 0.6), (350, 0.63), (400, 0.61))]
    assert plateau_change(rows, 400) == pytest.approx(0.03)  # 0.60 at step 300 (= 75 %) .. 0.63
    with pytest.raises(ValueError, match="need evaluations"):
        plateau_change(rows[-1:], 400)


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--seeds", "0"], "at least 2 seeds"), (["--seeds", "1", "1"], "must be distinct"), (["--steps", "0"], "> 0")],
)
def test_bad_arguments_are_usage_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_step_budget_module_runs_its_own_warmup_and_cosine():
    """The trainer drops TimeBudgetLR for a step budget, so the module must bring the schedule itself."""
    config = RECIPES["smoke"].config
    stepped = build_demo_module(config, ["a", "b"], max_steps=10).hparams
    timed = build_demo_module(config, ["a", "b"]).hparams
    assert (stepped.lr_schedule, stepped.warmup_steps) == ("cosine", WARMUP_STEPS)
    assert stepped.warmup_factor == 1 / WARMUP_STEPS
    assert (timed.lr_schedule, timed.warmup_steps) == ("constant", 0)  # TimeBudgetLR sets the lr
