"""Per-task gradients on the shared parameters, and the conflict statistics computed from them.

How the Jacobian is taken was chosen by measurement (DESIGN section 3; re-measured by
``benchmarks/jacobian.py``): T reverse passes through one retained graph were the fastest exact
method on the playground's model sizes, ahead of ``is_grads_batched`` and ``torch.func``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def task_jacobian(losses: Tensor | Sequence[Tensor], params: Sequence[Tensor]) -> Tensor:
    """``J[t]`` = gradient of ``losses[t]`` on ``params``, flattened and concatenated: ``[T, P]``.

    The graph is retained, so the caller may still backpropagate through the losses. A parameter
    a task does not reach contributes zeros (not an error): with task-specific parts of a shared
    block, a task's gradient there is genuinely zero.
    """
    params = list(params)
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([_flat(g, p) for g, p in zip(grads, params, strict=True)]))
    return torch.stack(rows)


def jacobian_and_other_grads(
    losses: Tensor, shared: Sequence[nn.Parameter], others: Sequence[nn.Parameter]
) -> Tensor:
    """The task Jacobian on ``shared``; meanwhile ``others`` accumulate the gradient of sum(losses).

    One reverse pass per task, nothing more: task-specific parameters get their own loss's
    gradient (what an unweighted backward would give them) from the same passes that build J.
    """
    shared, others = list(shared), list(others)
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, shared + others, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([_flat(g, p) for g, p in zip(grads[: len(shared)], shared, strict=True)]))
        for param, grad in zip(others, grads[len(shared):], strict=True):
            if grad is not None:
                param.grad = grad if param.grad is None else param.grad + grad
    return torch.stack(rows)


def set_flat_grad(params: Sequence[nn.Parameter], flat: Tensor) -> None:
    """Write a flat ``[P]`` direction into ``params[i].grad``, in the order task_jacobian flattens."""
    offset = 0
    for param in params:
        size = param.numel()
        param.grad = flat[offset: offset + size].view_as(param).clone()
        offset += size


def gradient_norms(jacobian: Tensor) -> Tensor:
    return jacobian.norm(dim=1)


def cosine_matrix(jacobian: Tensor, eps: float = 1e-12) -> Tensor:
    """``C[i, j]`` = cos(g_i, g_j); a zero gradient has cosine 0 with everything (no direction)."""
    unit = jacobian / jacobian.norm(dim=1, keepdim=True).clamp_min(eps)
    return (unit @ unit.T).clamp(-1.0, 1.0)  # float32 rounding can step just outside


def cosine_with(update: Tensor, jacobian: Tensor, eps: float = 1e-12) -> Tensor:
    """cos(update, g_t) for every task t: does the step descend each task's loss, and how directly?"""
    norms = jacobian.norm(dim=1) * update.norm()
    return ((jacobian @ update) / norms.clamp_min(eps)).clamp(-1.0, 1.0)


def _flat(grad: Tensor | None, param: Tensor) -> Tensor:
    return torch.zeros(param.numel(), dtype=param.dtype, device=param.device) if grad is None else grad.reshape(-1)
