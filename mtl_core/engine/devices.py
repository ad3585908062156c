"""Which torch device a run uses, and how many CPU threads."""

from __future__ import annotations

import os

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


def default_threads() -> int:
    """Torch CPU threads for a run: ``MTL_TORCH_THREADS``, else all cores but one.

    The spare core serves the app and the browser: a torch thread that has to share its core with
    them holds up every step it takes part in (seen on 2 cores with a live dashboard in Chromium:
    2 steps/s with both cores to torch, 14 with one). The app's workers and the CLI use the same count on
    purpose: a convolution's gradient sums in a different order with a different number of threads,
    so a run is bit-for-bit reproducible on the CPU only with the same count (``--threads`` sets it).
    """
    threads = os.environ.get("MTL_TORCH_THREADS", "").strip()
    if threads.isdigit() and int(threads) > 0:
        return int(threads)
    return max(1, (os.cpu_count() or 1) - 1)


def describe(device: str) -> str:
    """How a run's device is shown and stored: the CPU with its thread count (see default_threads)."""
    if device != "cpu":
        return device
    threads = torch.get_num_threads()
    return f"cpu, {threads} thread{'s' if threads != 1 else ''}"
