"""Pick the fastest safe training precision for the machine.

bf16 autocast is only used on a CPU after a one-time probe shows that its bf16 kernels train correctly *here*. A
2-core Sapphire Rapids Xeon (AMX) turned the first steps of small bf16 smoke runs into NaN depending on what earlier
code had left in freed memory: a kernel reading memory it never wrote. The one found (oneDNN's bf16 weight gradient of a
stride-2 convolution on a one-pixel-wide map, see :class:`~lightning_retina.backbone.Float32P6P7`) is avoided in the
model; the probe guards against others. It fills freed memory with NaN, trains a tiny network with the layer types and
small feature maps of those runs (convolutions with BatchNorm and GroupNorm, ``channels_last``, maps down to 1x1, a
batch of 4) in bf16 and in float32, and accepts bf16 only when every bf16 gradient is finite and close to the float32
one. Anything else falls back to ``"32-true"`` with a warning that says why.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

# bf16 keeps 8 mantissa bits and BatchNorm's backward subtracts nearly equal terms: on the AMD EPYC with AVX512-BF16
# where this was written, correct bf16 gradients of the probe network were 0.2 % to 17 % away from float32 in relative
# norm (three seeds). A kernel reading garbage gives NaN, inf or errors of order 1 and more.
_PROBE_RTOL = 0.5
_PROBE_REPEATS = 3


@lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matmul support (AVX512-BF16 or AMX), read from ``/proc/cpuinfo``."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _probe_network() -> nn.Module:
    """Backbone- and head-like layers at the smoke runs' sizes: 32x32 input down to a 1x1 map (like P7 at 64 px)."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.GroupNorm(32, 64), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=4, padding=1), nn.ReLU(),
        nn.Conv2d(64, 36, 3, padding=1),  # 9 anchors x 4 classes: a channel count that is no multiple of 16
    ).to(memory_format=torch.channels_last)  # fmt: skip


def _poison_freed_memory() -> None:
    """Fill memory that the allocator will hand out next with NaN (then free it), as earlier NaN tests would."""
    for numel in (1 << 10, 1 << 14, 1 << 18, 1 << 21):
        torch.full((numel,), float("nan")).add_(1.0)  # allocated, written, freed


def _gradients(network: nn.Module, images: Tensor, weights: Tensor, bf16: bool) -> list[Tensor]:
    """Gradients of ``Σ weights · network(images)`` (a linear loss keeps the float32 reference well conditioned)."""
    network.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = network(images)
    out.float().mul(weights).sum().backward()
    return [p.grad.detach().clone() for p in network.parameters()]


def _gradients_agree(bf16: list[Tensor], fp32: list[Tensor]) -> str | None:
    """``None`` when every bf16 gradient is finite and within ``_PROBE_RTOL`` of fp32 (in norm), else the reason."""
    for index, (low, high) in enumerate(zip(bf16, fp32)):
        if not bool(torch.isfinite(low).all()):
            return f"a non-finite bf16 gradient (parameter {index} of the probe network)"
        error = float((low - high).norm()) / max(float(high.norm()), 1e-12)
        if error > _PROBE_RTOL:
            return f"a bf16 gradient {error:.2g} away from float32 in relative norm (parameter {index})"
    return None


@lru_cache(maxsize=None)
def cpu_bf16_probe() -> str | None:
    """Train a tiny network in bf16 and float32 on this CPU; ``None`` when bf16 is correct, else what went wrong.

    Runs once per process (about 0.1 s), in its own RNG state so that the caller's random stream is unchanged.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = _probe_network()
        images = torch.rand(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
        weights = torch.randn(4, 36, 1, 1)
        reference = _gradients(network, images, weights, bf16=False)
        for _ in range(_PROBE_REPEATS):
            _poison_freed_memory()
            problem = _gradients_agree(_gradients(network, images, weights, bf16=True), reference)
            if problem:
                return problem
    return None


def fast_precision(accelerator: str = "auto") -> str:
    """``"bf16-mixed"`` where it is fast and correct (CUDA with bf16, or a CPU with AVX512-BF16/AMX whose bf16
    kernels pass :func:`cpu_bf16_probe`), else ``"16-mixed"`` (CUDA without bf16) or ``"32-true"``.

    Args:
        accelerator: ``"cpu"``, ``"gpu"``/``"cuda"`` or ``"auto"`` (CUDA when available).

    Returns:
        A Lightning ``precision`` string. Losses, box decoding and NMS always run in float32 regardless.

    Warns:
        RuntimeWarning: when the CPU has bf16 instructions but the probe found its bf16 training wrong.
    """
    use_cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if use_cuda:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if not cpu_supports_bf16():
        return "32-true"
    problem = cpu_bf16_probe()
    if problem:
        warnings.warn(
            f"bf16 training is not used on this CPU: a probe training step gave {problem}. "
            "Training runs in float32 (precision='32-true') instead.",
            RuntimeWarning,
            stacklevel=2,
        )
        return "32-true"
    return "bf16-mixed"
