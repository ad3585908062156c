"""Which torch device a run uses."""

from __future__ import annotations

import torch


def resolve_device(requested: str) -> str:
    """``auto`` takes CUDA, then Apple's MPS, then the CPU; asking for one that is absent is an error."""
    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cuda" and not cuda:
        raise ValueError("device 'cuda' was asked for, but this machine has no CUDA GPU (use 'auto' or 'cpu')")
    if requested == "mps" and not mps:
        raise ValueError("device 'mps' was asked for, but this machine has no Apple GPU (use 'auto' or 'cpu')")
    return requested
