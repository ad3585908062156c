"""Every registered method on a CUDA GPU (skipped without one): an aggregation's update stays on
the GPU and matches the CPU's, a weighting's tensors follow it there, and a short training of each
finishes. Parametrised over the registry: a new method is tested here without editing a list."""

from __future__ import annotations

import math

import pytest
import torch

from mtl_core.methods import METHODS, make_aggregator, make_weighting
from tests.aggregation_support import aggregate, conflicting_jacobian, short_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

AGGREGATIONS = [entry.key for entry in METHODS if entry.kind == "aggregation"]
WEIGHTINGS = [entry.key for entry in METHODS if entry.kind == "weighting"]


def has_task_weights(key: str) -> bool:
    """False for a per-coordinate rule (GradDrop), whose update is no combination of the rows."""
    return make_aggregator(key, n_tasks=2)(conflicting_jacobian(2, 10, seed=0)).weights is not None


@pytest.mark.parametrize("key", AGGREGATIONS)
def test_on_cuda_the_update_stays_on_the_gpu_and_matches_the_cpu(key):
    jacobian = conflicting_jacobian(3, 1000, seed=0)
    on_gpu = jacobian.float().cuda()
    out = aggregate(key, on_gpu)
    assert out.update.device == on_gpu.device and out.update.dtype == torch.float32
    assert torch.isfinite(out.update).all()
    if out.weights is None:  # its draws are made on the GPU: no CPU twin (see the GradDrop test)
        return
    assert out.weights.device == on_gpu.device and out.weights.dtype == torch.float32
    expected = aggregate(key, jacobian).update  # CPU, float64; random orders are drawn on the CPU
    assert torch.allclose(out.update.double().cpu(), expected, atol=1e-4 * expected.norm().item())


def test_on_cuda_graddrop_keeps_one_sign_per_coordinate():
    jacobian = conflicting_jacobian(3, 1000, seed=0)
    update = aggregate("graddrop", jacobian.float().cuda()).update.double().cpu()
    positive, negative = jacobian.clamp_min(0).sum(dim=0), jacobian.clamp_max(0).sum(dim=0)
    assert torch.all(torch.isclose(update, positive, atol=1e-4) | torch.isclose(update, negative, atol=1e-4))


@pytest.mark.parametrize("key", AGGREGATIONS)
def test_on_cuda_a_short_training_finishes(key):
    trainer, records = short_run(key, steps=5, device="cuda")
    assert trainer.status == "done" and len(records) == 5
    assert all(math.isfinite(v) for r in records for v in r.loss.values())
    weights = [v for r in records for v in r.weight.values()]
    if has_task_weights(key):
        assert all(math.isfinite(v) for v in weights)
    else:
        assert all(math.isnan(v) for v in weights)  # no task weights: the trainer records NaN


@pytest.mark.parametrize("key", WEIGHTINGS)
def test_on_cuda_a_weighting_moves_its_tensors_in_place(key):
    weighting = make_weighting(key, 2)
    parameters = list(weighting.parameters())
    assert weighting.to(torch.device("cuda")) is weighting
    assert [id(p) for p in weighting.parameters()] == [id(p) for p in parameters]  # optimisers keep them
    assert all(p.is_cuda for p in parameters)
    losses = torch.tensor([0.5, 2.0], device="cuda")
    assert weighting.weights(losses, 1).device == losses.device


@pytest.mark.parametrize("key", WEIGHTINGS)
def test_on_cuda_a_weighting_trains(key):
    trainer, records = short_run(key, steps=5, device="cuda",
                                 method_params={"weights": "1, 0.5"} if key == "static" else {})
    assert trainer.status == "done" and len(records) == 5
    assert all(math.isfinite(v) for r in records for v in (*r.loss.values(), *r.weight.values()))
