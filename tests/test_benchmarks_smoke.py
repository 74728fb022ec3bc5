"""Every benchmark runs in its tiny ``--quick`` mode and finds our outputs equal to the reference's.

Timings are not checked (a benchmark is not a test); the parity column is: losses and gradients equal to
torchvision's, identical detections, identical COCO AP, equal first-step training losses, and a loss peak memory
not above torchvision's.
"""

from __future__ import annotations

import importlib

import pytest

BENCHMARKS = ["bench_loss", "bench_postprocess", "bench_eval", "bench_train_step", "bench_inference"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_quick_benchmark_rows_have_parity(name, capsys):
    tables = importlib.import_module(f"benchmarks.{name}").main(["--quick"])
    rows = [row for table in tables.values() for row in table]
    assert rows, f"{name} printed no rows"
    for row in rows:
        assert row["parity"].startswith("OK"), row
    printed = capsys.readouterr().out
    assert printed.count("| OK (") == len(rows)  # the Markdown table shows the same verdicts
