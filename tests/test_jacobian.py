"""Per-task Jacobian and the conflict statistics, against hand-computed gradients."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mtl_core.engine.jacobian import (
    cosine_matrix,
    cosine_with,
    gradient_norms,
    jacobian_and_other_grads,
    set_flat_grad,
    task_jacobian,
)


def test_jacobian_rows_are_the_task_gradients_of_a_known_function():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor(3.0, requires_grad=True)
    losses = torch.stack([(w**2).sum() + b, w[0] * b])  # grads: [2w, 1] and [b, 0, w0]
    jacobian = task_jacobian(losses, [w, b])
    assert torch.equal(jacobian, torch.tensor([[2.0, 4.0, 1.0], [3.0, 0.0, 1.0]]))


def test_unreached_parameters_give_zero_columns_and_the_graph_is_retained():
    a = torch.ones(2, requires_grad=True)
    unused = torch.ones(3, requires_grad=True)
    losses = torch.stack([a.sum(), (2 * a).sum()])
    jacobian = task_jacobian(losses, [a, unused])
    assert jacobian.shape == (2, 5) and torch.equal(jacobian[:, 2:], torch.zeros(2, 3))
    losses.sum().backward()  # still possible: the graph was retained
    assert torch.equal(a.grad, torch.full((2,), 3.0))


def test_jacobian_with_other_grads_gives_heads_the_summed_gradient():
    torch.manual_seed(0)
    trunk, head_a, head_b = nn.Linear(4, 3), nn.Linear(3, 1), nn.Linear(3, 1)
    x = torch.randn(8, 4)
    features = trunk(x)
    losses = torch.stack([head_a(features).square().mean(), head_b(features).abs().mean()])
    shared, others = list(trunk.parameters()), [*head_a.parameters(), *head_b.parameters()]
    jacobian = jacobian_and_other_grads(losses, shared, others)
    others_grads = [p.grad.clone() for p in others]
    for p in [*shared, *others]:
        p.grad = None
    expected = task_jacobian(losses, shared)
    losses.sum().backward()
    assert torch.allclose(jacobian, expected)
    for got, param in zip(others_grads, others, strict=True):
        assert torch.allclose(got, param.grad)


def test_set_flat_grad_inverts_the_flattening():
    params = [nn.Parameter(torch.zeros(2, 3)), nn.Parameter(torch.zeros(4))]
    flat = torch.arange(10.0)
    set_flat_grad(params, flat)
    assert torch.equal(torch.cat([p.grad.reshape(-1) for p in params]), flat)


def test_conflict_statistics():
    jacobian = torch.tensor([[3.0, 4.0], [-3.0, -4.0], [4.0, -3.0], [0.0, 0.0]])
    assert torch.allclose(gradient_norms(jacobian), torch.tensor([5.0, 5.0, 5.0, 0.0]))
    cosine = cosine_matrix(jacobian)
    assert math.isclose(cosine[0, 1].item(), -1.0, abs_tol=1e-6)  # opposite: full conflict
    assert math.isclose(cosine[0, 2].item(), 0.0, abs_tol=1e-6)  # orthogonal
    assert math.isclose(cosine[0, 0].item(), 1.0, abs_tol=1e-6)
    assert torch.equal(cosine[3], torch.zeros(4))  # a zero gradient has no direction
    update = jacobian[:3].sum(0)  # = g3 alone, since g1 + g2 = 0
    assert torch.allclose(cosine_with(update, jacobian[:3]), torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)


def test_cosines_stay_within_minus_one_one_for_parallel_float32_gradients():
    torch.manual_seed(0)
    row = torch.randn(100_000)
    jacobian = torch.stack([row, 3.7 * row, -row])
    assert cosine_matrix(jacobian).abs().max() <= 1.0
    assert cosine_with(0.3 * row, jacobian).abs().max() <= 1.0
    assert cosine_with(0.3 * row, jacobian)[2] == pytest.approx(-1.0, abs=1e-6)
