"""Re-attack of issue 20: generate hostile inputs for every row of the issue and classify what the package does.

Argument parsing, ``main`` and the reports (``OUT/reattack.json``, ``OUT/reattack.md``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from collections import Counter
from pathlib import Path

from . import inputs
from .cases_alwa import alwa_cases
from .cases_checkpoints import ckpt_cases
from .cases_cli import cli_cases
from .cases_coco import coco_cases
from .cases_images import image_cases
from .cases_voc import voc_cases
from .cases_writers import writer_cases
from .harness import GIB, OUTCOMES, REPO, Case, Result, run_api, run_case
from .inputs import make_checkpoint


def all_cases() -> list[Case]:
    return [*writer_cases(), *coco_cases(), *voc_cases(), *image_cases(), *ckpt_cases(), *alwa_cases(),
            *cli_cases()]  # fmt: skip


# ================================================================================================ report
def tally(results: list[Result]) -> dict[str, Counter]:
    table: dict[str, Counter] = {}
    for r in results:
        table.setdefault(r.category, Counter())[r.outcome] += 1
    table["total"] = sum(table.values(), Counter())
    return table


def markdown(results: list[Result]) -> str:
    table = tally(results)
    cols = ["inputs", *OUTCOMES, *sorted({r.outcome for r in results} - set(OUTCOMES))]
    lines = ["| category | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for cat, counts in table.items():
        cells = [str(sum(counts.values()))] + [str(counts.get(c, 0)) for c in cols[1:]]
        lines.append(f"| {'**total**' if cat == 'total' else cat} | " + " | ".join(cells) + " |")
    bad = [r for r in results if r.outcome != "ok"]
    lines += ["", "## Not ok", ""] + [f"- [{r.outcome}] {r.category} / {r.name}: {r.detail} (expected: {r.expected})"
                                      for r in bad] or ["(none)"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reattack", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the generated inputs and the reports")
    parser.add_argument("--only", default="", help="comma-separated categories (default: all)")
    parser.add_argument("--match", default="", help="only cases whose name contains this")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--mem-cap-gib", type=float, default=2.0, help="peak memory above the start that counts "
                        "as resource exhaustion")  # fmt: skip
    args = parser.parse_args(argv)
    if sys.path[0] != str(REPO):  # run from another folder: attack this checkout, not an installed copy
        sys.path.insert(0, str(REPO))

    import torch
    from tqdm.auto import tqdm

    torch.set_num_threads(1)  # no thread pool in the parent: forking stays safe
    warnings.filterwarnings("ignore")
    for module in ("checkpoint", "cli", "data.coco", "data.voc", "demo", "detect", "callbacks"):
        importlib.import_module(f"lightning_retina.{module}")  # imported once in the parent: each fork has them

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    inputs.CKPT = out / "_base" / "model.ckpt"
    inputs.CKPT.parent.mkdir(exist_ok=True)
    if not inputs.CKPT.is_file():
        mk = Case("_", "checkpoint", "work", "", lambda d: {}, lambda d, c: make_checkpoint(inputs.CKPT))
        report, _, _ = run_api(mk, inputs.CKPT.parent, {}, 300, 4 * GIB)
        if report.get("raised") or not inputs.CKPT.is_file():
            print(f"could not write the base checkpoint: {report}", file=sys.stderr)
            return 1
    cases = all_cases()
    if args.only:
        cases = [c for c in cases if c.category in args.only.split(",")]
    if args.match:
        cases = [c for c in cases if args.match in c.name]
    mem_cap = int(args.mem_cap_gib * GIB)
    results = []
    for case in tqdm(cases, desc="re-attack", unit="case"):
        results.append(run_case(case, out, args.timeout, mem_cap))
    (out / "reattack.json").write_text(json.dumps([r.__dict__ for r in results], indent=1, default=str) + "\n")
    text = markdown(results)
    (out / "reattack.md").write_text(text)
    print(text)
    return 0

