"""What every benchmark shares: the command line, interleaved timing, peak memory, the Markdown table."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(
    description: str, argv: Sequence[str] | None, add: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """The options of every benchmark: ``--device``, ``--quick``, ``--full``, ``--repeats``, ``--warmup`` and
    ``--threads``.

    ``--quick`` is a 1-repeat smoke run on tiny inputs (used by the test suite); ``--full`` runs every setting of
    the issue instead of the default subset that fits a 2-core CPU.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny inputs, 1 repeat, no warm-up (smoke test)")
    size.add_argument("--full", action="store_true", help="every setting of the issue (slow on a CPU)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per implementation (default 10)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls per implementation first (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    if add is not None:
        add(parser)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda given but torch.cuda.is_available() is False")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 10
    if args.warmup is None:
        args.warmup = 0 if args.quick else 2
    if args.repeats < 1 or args.warmup < 0:
        parser.error(f"need --repeats >= 1 and --warmup >= 0, got {args.repeats} and {args.warmup}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return args


def synchronize(device: torch.device | str) -> None:
    """Wait for queued CUDA work so that wall-clock time covers it (no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int, warmup: int, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Median wall-clock seconds of each function, calling them in turn (A, B, A, B, …) so drift hits all alike.

    Args:
        fns: name → zero-argument callable doing one unit of work.
        repeats: timed calls of each function.
        warmup: untimed calls of each function first.
        device: CUDA work is synchronised before and after each call.

    Returns:
        name → median seconds.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def versus_torchvision_row(
    label: str, run: Callable[[str], Any], check: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One table row: ``run("ours")`` against ``run("torchvision")`` timed interleaved, with the parity verdict.

    Args:
        label: the setting, first column.
        run: does one unit of work of the named implementation.
        check: the parity verdict (see :func:`parity`).
        args: the parsed benchmark options (``repeats``, ``warmup``, ``device``).
    """
    fns = {name: (lambda name=name: run(name)) for name in ("ours", "torchvision")}
    times = time_interleaved(fns, args.repeats, args.warmup, args.device)
    return {
        "setting": label,
        "torchvision ms": ms(times["torchvision"]),
        "ours ms": ms(times["ours"]),
        "ratio (tv/ours)": round(times["torchvision"] / times["ours"], 2),
        "parity": check,
    }


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS (``VmHWM``) to its current RSS; ``False`` where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def rss_bytes(field: str = "VmRSS") -> int:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process, in bytes, from ``/proc/self/status``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def peak_memory_of(fn: Callable[[], Any], device: torch.device | str) -> int:
    """Bytes by which running ``fn`` once raised the peak memory above what was in use before it.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the rise of the peak RSS (``VmHWM``) after resetting it,
    meaningful in a fresh process whose large allocations are mmapped (see :func:`peak_memory_in_subprocess`).
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    if not reset_peak_rss():
        raise RuntimeError("cannot reset the peak RSS (writing /proc/self/clear_refs failed); run on Linux >= 4.0")
    before = rss_bytes("VmRSS")
    fn()
    return rss_bytes("VmHWM") - before


def peak_memory_in_subprocess(script: str | Path, args: Sequence[str]) -> dict[str, Any]:
    """Run ``python script *args`` in a fresh process and return the JSON object it prints on its last line.

    glibc is told to mmap every allocation above 64 KiB, so freed memory goes back to the system at once and the
    peak RSS measures the tensors that were really alive together.
    """
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory probe {script} {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parity(ok: bool, detail: str) -> str:
    """The text of the parity column: ``OK`` or ``MISMATCH``, then what was compared."""
    return f"{'OK' if ok else 'MISMATCH'} ({detail})"


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print ``rows`` (dicts with the same keys) as a Markdown table, header first."""
    if not rows:
        return
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def ms(seconds: float) -> float:
    """Seconds → milliseconds rounded for the table."""
    return round(seconds * 1000.0, 1)


def describe_machine(device: torch.device | str) -> str:
    """One line naming the CPU or GPU, the thread count and the torch / torchvision versions."""
    import torchvision

    if torch.device(device).type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = _cpu_model_name() + f", {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}"
    return f"{where}; torch {torch.__version__}, torchvision {torchvision.__version__}"


def _cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
