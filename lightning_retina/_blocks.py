"""How many elements the blockwise kernels (focal loss, anchor matching) process at a time."""

from __future__ import annotations

import torch

# On the CPU a block's few float32 temporaries stay in cache: on a 2-core AMD EPYC with AVX-512, 256K to 512K
# elements were fastest both for the focal loss and the IoU blocks (64K: 1.5x slower, whole tensors: 2-5x). The
# larger end halves the number of ops, each of which waits for all intra-op threads (costly when the cores are
# shared with other processes). On a GPU blocks only bound the memory of the temporaries, so they are large.
_CPU_BLOCK_ELEMENTS = 1 << 19
_CUDA_BLOCK_ELEMENTS = 1 << 24


def block_elements(device: torch.device) -> int:
    """Elements per block for tensors on ``device``."""
    return _CUDA_BLOCK_ELEMENTS if device.type == "cuda" else _CPU_BLOCK_ELEMENTS
