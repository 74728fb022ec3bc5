"""The harness: a case, its result, the forked-child and CLI runners, and the classifier.

See the package docstring for the outcomes.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("ok", "unclear_error", "silent_wrong", "data_loss", "hang", "resource")
GIB = 1 << 30
REPO = Path(__file__).resolve().parents[2]

Ctx = dict[str, Any]


@dataclass
class Case:
    """One hostile input.

    Args:
        category: the issue-20 area (``data_loss``, ``coco``, ``voc``, ``images``, ``cli``, ``checkpoints``, ...).
        name: short name, unique in its category.
        expect: ``"refuse"`` (an error naming ``names``), ``"work"`` (``check`` returns no problem) or ``"either"``.
        expected: the expected result in words (reported).
        prepare: ``prepare(folder) -> ctx`` writes the inputs; ``ctx["protect"]`` lists files that must survive
            unchanged, ``ctx["argv"]`` is the CLI command line for CLI cases.
        act: ``act(folder, ctx) -> result`` for API cases (``None`` for CLI cases).
        names: substrings the error message must contain (``{d}`` is replaced by the case folder).
        check: ``check(result, ctx, warnings) -> problem or None`` (CLI: ``result`` is ``(rc, stdout, stderr)``).
    """

    category: str
    name: str
    expect: str
    expected: str
    prepare: Callable[[Path], Ctx]
    act: Callable[[Path, Ctx], Any] | None = None
    names: tuple[str, ...] = ()
    check: Callable[[Any, Ctx, list[str]], str | None] | None = None


@dataclass
class Result:
    category: str
    name: str
    expected: str
    outcome: str
    detail: str
    seconds: float
    peak_gib: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# ============================================================================================== file helpers
def sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def snapshot(paths: list[Path]) -> dict[str, str | None]:
    return {str(p): sha(p) for p in paths}


# =============================================================================================== child runner
def _vm_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


_AUDIT: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and args and str(args[0]) == "/etc/passwd":
        _AUDIT.append(f"opened {args[0]}")
    elif event in ("socket.connect", "socket.getaddrinfo", "urllib.Request"):
        _AUDIT.append(f"network: {event} {str(args)[:80]}")


def _child(case: Case, d: Path, ctx: Ctx, mem_cap: int, conn: int) -> None:
    """Runs in the forked child: limits, act, check; writes one JSON line to ``conn``."""
    os.setsid()
    soft = _vm_kib("VmSize") * 1024 + mem_cap + GIB  # address space: what is mapped now + the cap + slack
    resource.setrlimit(resource.RLIMIT_AS, (soft, soft))
    sys.addaudithook(_audit)
    report: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = case.act(d, ctx)
            report["raised"] = None
        except BaseException as err:  # noqa: BLE001 - everything is an outcome here
            result = None
            report["raised"] = type(err).__name__
            report["message"] = str(err)
            report["traceback"] = traceback.format_exc()[-1500:]
        messages = [str(w.message) for w in caught]
    report["warnings"] = messages[:20]
    report["audit"] = _AUDIT[:5]
    if report["raised"] is None and case.check is not None:
        try:
            report["problem"] = case.check(result, ctx, messages)
        except BaseException as err:  # noqa: BLE001
            report["problem"] = f"check failed: {type(err).__name__}: {err}"
    os.write(conn, json.dumps(report, default=str).encode())
    os.close(conn)
    os._exit(0)


def _wait(pid: int, timeout: float) -> tuple[int | None, float]:
    """``(status or None on timeout, peak RSS in bytes)`` of the child ``pid``."""
    deadline = time.monotonic() + timeout
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage.ru_maxrss * 1024
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, _, usage = os.wait4(pid, 0)
            return None, usage.ru_maxrss * 1024
        time.sleep(0.02)


def run_api(case: Case, d: Path, ctx: Ctx, timeout: float, mem_cap: int) -> tuple[dict | None, float, float]:
    """Fork, run the case; ``(report or None on hang/crash, peak GiB above the parent, seconds)``."""
    base = _vm_kib("VmRSS") * 1024
    read, write = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            _child(case, d, ctx, mem_cap, write)
        finally:
            os._exit(1)
    os.close(write)
    os.set_blocking(read, False)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    status = None
    while True:
        try:
            data = os.read(read, 1 << 16)
            if data:
                chunks.append(data)
        except BlockingIOError:
            pass
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            peak = usage.ru_maxrss * 1024
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            _, _, usage = os.wait4(pid, 0)
            os.close(read)
            return {"hang": True}, (usage.ru_maxrss * 1024 - base) / GIB, time.monotonic() - start
        time.sleep(0.01)
    os.set_blocking(read, True)
    while data := os.read(read, 1 << 16):
        chunks.append(data)
    os.close(read)
    seconds = time.monotonic() - start
    try:
        report = json.loads(b"".join(chunks))
    except ValueError:
        report = {"crashed": f"child exited with status {status} and no report"}
    return report, max(0.0, (peak - base) / GIB), seconds


def run_cli(argv: list[str], d: Path, timeout: float, mem_cap: int) -> tuple[dict, float, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    start = time.monotonic()
    with open(d / "stdout.txt", "wb") as out, open(d / "stderr.txt", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "lightning_retina.cli", *argv], cwd=d, env=env, stdout=out,
                                stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        status, peak = _wait(proc.pid, timeout)
        proc.returncode = 0  # reaped by _wait
    seconds = time.monotonic() - start
    stdout = (d / "stdout.txt").read_text(errors="replace")
    stderr = (d / "stderr.txt").read_text(errors="replace")
    if status is None:
        return {"hang": True}, peak / GIB, seconds
    rc = os.waitstatus_to_exitcode(status)
    return {"rc": rc, "stdout": stdout[-3000:], "stderr": stderr[-3000:]}, peak / GIB, seconds


# ================================================================================================ classification
MEMORY_ERRORS = ("MemoryError", "can't allocate memory", "bad_alloc", "Cannot allocate memory", "out of memory")


def classify(case: Case, d: Path, ctx: Ctx, report: dict, peak_gib: float, mem_cap: int,
             before: dict[str, str | None]) -> tuple[str, str]:  # fmt: skip
    """``(outcome, detail)`` of one run (see the package docstring)."""
    after = snapshot([Path(p) for p in before])
    lost = [p for p, h in before.items() if after[p] != h]
    if lost:
        return "data_loss", "changed or removed: " + ", ".join(Path(p).name for p in lost[:5])
    if report.get("hang"):
        return "hang", "ran past the timeout"
    message = report.get("message") or ""
    raised = f"{report.get('raised')}: {message}"
    if peak_gib > mem_cap / GIB or any(m in raised for m in MEMORY_ERRORS):
        return "resource", f"peak {peak_gib:.2f} GiB above the start; {message[:120]}"
    if "crashed" in report:
        return "unclear_error", report["crashed"]
    names = tuple(n.replace("{d}", str(d)) for n in case.names)
    if "rc" in report:  # a CLI run
        rc, stderr = report["rc"], report["stderr"]
        problem = case.check((rc, report["stdout"], stderr), ctx, []) if case.check else None
        if rc != 0 and problem and case.expect != "work":
            return "silent_wrong", f"rc {rc}, but {problem}"
        if rc != 0:
            if case.expect == "work":
                return "unclear_error", f"rc {rc}: {_last(stderr)}"
            if "Traceback" in stderr:
                return "unclear_error", f"traceback: {_last(stderr)}"
            missing = [n for n in names if n not in stderr]
            return ("unclear_error", f"message lacks {missing}: {_last(stderr)}") if missing else ("ok", _last(stderr))
        if case.expect == "refuse":
            return "silent_wrong", "accepted (rc 0); expected a refusal"
        return ("silent_wrong", problem) if problem else ("ok", "rc 0")
    if report.get("audit") and case.category == "checkpoints":  # a checkpoint's hparams must not reach files/net
        return "silent_wrong", "; ".join(report["audit"])
    if report["raised"] is not None:
        missing = [n for n in names if n not in message]
        text = f"{report['raised']}: {message[:200]}"
        if case.expect == "work" or missing:
            return "unclear_error", (f"lacks {missing}: " if missing else "") + text
        return "ok", text
    if case.expect == "refuse":
        return "silent_wrong", "accepted; expected a refusal"
    problem = report.get("problem")
    return ("silent_wrong", problem) if problem else ("ok", "worked" + _warned(report))


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _warned(report: dict) -> str:
    return f" (warned: {report['warnings'][0][:120]})" if report.get("warnings") else ""


def run_case(case: Case, root: Path, timeout: float, mem_cap: int) -> Result:
    d = root / case.category / case.name.replace(" ", "_").replace("/", "_")
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    try:
        ctx = case.prepare(d)
    except Exception as err:  # noqa: BLE001 - a broken case is reported, not fatal
        return Result(case.category, case.name, case.expected, "harness_error", f"prepare: {err!r}", 0.0)
    before = snapshot([Path(p) for p in ctx.get("protect", [])])
    if "argv" in ctx:
        report, peak, seconds = run_cli([str(a) for a in ctx["argv"]], d, timeout, mem_cap)
    else:
        report, peak, seconds = run_api(case, d, ctx, timeout, mem_cap)
    outcome, detail = classify(case, d, ctx, report, peak, mem_cap, before)
    return Result(case.category, case.name, case.expected, outcome, detail, round(seconds, 2), round(peak, 3))
