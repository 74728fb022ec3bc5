"""Dtype handling shared by the loss functions."""

from __future__ import annotations

import torch
from torch import Tensor


def upcast(t: Tensor) -> Tensor:
    """Half precision (fp16/bf16) and integer tensors → float32; float32/float64 unchanged.

    Losses of an AMP model are computed in float32 so they neither overflow nor underflow.
    """
    if t.dtype in (torch.float16, torch.bfloat16) or not t.is_floating_point():
        return t.float()
    return t
