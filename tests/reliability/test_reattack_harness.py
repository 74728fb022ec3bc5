"""Smoke test of the re-attack harness (``benchmarks/reattack/``): its classifier can tell each outcome apart.

Fake cases with known behaviour (a clear and an unclear refusal, a wrong result, a writer that changes the user's
file, a hang, an allocation over the cap) and two real ones go through ``run_case`` as the harness runs them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchmarks.reattack.cases_coco import coco_cases
from benchmarks.reattack.harness import Case, run_case


def _user_file(d: Path) -> dict:
    (d / "mine.txt").write_text("user data\n")
    return {"protect": [d / "mine.txt"], "file": d / "mine.txt"}


def _refuse_clearly(d: Path, ctx: dict) -> None:
    raise ValueError(f"{ctx['file']}: key 'width' is '64', not an integer")


def _refuse_unclearly(d: Path, ctx: dict) -> None:
    raise KeyError("width")


def _careless_writer(d: Path, ctx: dict) -> None:
    ctx["file"].write_text("overwritten\n")


def _sleep(d: Path, ctx: dict) -> None:
    time.sleep(30)


def _allocate(d: Path, ctx: dict) -> bytearray:
    return bytearray(8 << 30)


FAKE = {
    "clear refusal": (Case("t", "clear", "refuse", "refused", _user_file, _refuse_clearly, ("mine.txt", "width")),
                      "ok"),
    "unclear refusal": (Case("t", "unclear", "refuse", "refused", _user_file, _refuse_unclearly, ("mine.txt",)),
                        "unclear_error"),
    "accepted": (Case("t", "accepted", "refuse", "refused", _user_file, lambda d, c: None), "silent_wrong"),
    "wrong result": (Case("t", "wrong", "work", "42", _user_file, lambda d, c: 41, (),
                          lambda r, c, w: None if r == 42 else f"got {r}"), "silent_wrong"),
    "right result": (Case("t", "right", "work", "42", _user_file, lambda d, c: 42, (),
                          lambda r, c, w: None if r == 42 else f"got {r}"), "ok"),
    "data loss": (Case("t", "loss", "work", "user file kept", _user_file, _careless_writer), "data_loss"),
    "hang": (Case("t", "hang", "work", "returns", _user_file, _sleep), "hang"),
    "over the memory cap": (Case("t", "memory", "work", "small", _user_file, _allocate), "resource"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(FAKE))
def test_classifier_tells_outcomes_apart(tmp_path: Path, name: str) -> None:
    case, outcome = FAKE[name]
    result = run_case(case, tmp_path, timeout=3.0, mem_cap=1 << 30)
    assert result.outcome == outcome, result.detail


def test_real_cases_from_the_harness(tmp_path: Path) -> None:
    cases = {c.name: c for c in coco_cases()}
    for name in ("duplicate image ids", "orphan annotation"):
        result = run_case(cases[name], tmp_path, timeout=60.0, mem_cap=2 << 30)
        assert result.outcome == "ok", result.detail
