"""Dtype handling shared by the loss functions."""

from __future__ import annotations

import torch
from torch import Tensor

_FLOAT16_MAX = torch.finfo(torch.float16).max


class _SaturatingFloat16Upcast(torch.autograd.Function):
    """float16 → float32 whose backward saturates the gradient at ±65504 instead of overflowing to ``inf``."""

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:
        return t.float()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.clamp(-_FLOAT16_MAX, _FLOAT16_MAX).half()  # NaN stays NaN: a real error is not hidden


def upcast(t: Tensor) -> Tensor:
    """Half precision (fp16/bf16) and integer tensors → float32; float32/float64 unchanged.

    Losses of an AMP model are computed in float32 so they neither overflow nor underflow. The gradient that flows
    back to a float16 input saturates at float16's largest finite value: at degenerate boxes the eps-regularised
    IoU-family losses have derivatives of order ``1 / eps`` (finite in float32, ``inf`` in float16). bfloat16
    shares float32's range and needs no such care.
    """
    if t.dtype == torch.float16:
        return _SaturatingFloat16Upcast.apply(t)
    if t.dtype == torch.bfloat16 or not t.is_floating_point():
        return t.float()
    return t
