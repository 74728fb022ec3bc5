"""Pick the fastest safe training precision for the machine."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch


@lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matmul support (AVX512-BF16 or AMX), read from ``/proc/cpuinfo``."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def fast_precision(accelerator: str = "auto") -> str:
    """``"bf16-mixed"`` where it is fast (CUDA with bf16, or a CPU with AVX512-BF16/AMX), else ``"32-true"``.

    Args:
        accelerator: ``"cpu"``, ``"gpu"``/``"cuda"`` or ``"auto"`` (CUDA when available).

    Returns:
        A Lightning ``precision`` string. Losses, box decoding and NMS always run in float32 regardless.
    """
    use_cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if use_cuda:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_supports_bf16() else "32-true"
