"""Projection and alignment aggregators (PCGrad, GradDrop, GradVac, Aligned-MTL, UPGrad, ConFIG):
each paper's defining property on random Jacobians with conflicts (float64), the dual-cone solver
against an exact enumeration, the registry entries, and one short real training per method."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from mtl_core.config import ConfigError, RunConfig
from mtl_core.methods import METHODS, make_aggregator
from mtl_core.methods import upgrad as upgrad_module
from mtl_core.methods.aligned_mtl import aligned_mtl_weights
from mtl_core.methods.dual_cone import DualConeProjection, project_to_dual_cone
from mtl_core.methods.pcgrad import pcgrad_coefficients
from tests.aggregation_support import aggregate, conflicting_jacobian, short_run

KEYS = ("pcgrad", "graddrop", "gradvac", "aligned_mtl", "aligned_mtl_ub", "upgrad", "config")
SEEDS = (0, 1, 2, 3)






# --- common contract (the rest is tests/test_methods_contract.py's, for every method) ------------

@pytest.mark.parametrize("key", KEYS)
def test_a_single_task_passes_its_gradient_through(key):
    jacobian = conflicting_jacobian(2, 20, seed=0)[:1]
    assert torch.allclose(aggregate(key, jacobian).update, jacobian[0], atol=1e-12)


# --- PCGrad -------------------------------------------------------------------------------------

def reference_pcgrad(jacobian: torch.Tensor, orders: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """The paper's loop in parameter space; also returns g_i^PC . g_j right after each projection."""
    projected = jacobian.clone()
    after = []
    for i in range(jacobian.shape[0]):
        for j in orders[i].tolist():
            dot = projected[i] @ jacobian[j]
            if dot < 0:
                projected[i] = projected[i] - dot / (jacobian[j] @ jacobian[j]) * jacobian[j]
                after.append((projected[i] @ jacobian[j]).item() / jacobian[j].norm().item())
    return projected, after


def test_pcgrad_with_two_conflicting_gradients_is_the_closed_form():
    g1, g2 = conflicting_jacobian(2, 40, seed=0)
    expected = g1 - (g1 @ g2) / (g2 @ g2) * g2 + g2 - (g2 @ g1) / (g1 @ g1) * g1
    out = aggregate("pcgrad", torch.stack([g1, g2]))
    assert torch.allclose(out.update, expected, atol=1e-12)
    # After projection neither gradient conflicts with the other's original: exactly orthogonal.
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    assert abs(p1 @ g2) < 1e-10 * g1.norm() * g2.norm()


def test_pcgrad_without_conflict_is_the_plain_sum():
    jacobian = torch.rand(4, 30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # all dots > 0
    out = aggregate("pcgrad", jacobian)
    assert torch.allclose(out.update, jacobian.sum(dim=0), atol=1e-12)
    assert torch.equal(out.weights, torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("seed", SEEDS)
def test_pcgrad_on_the_gram_matrix_matches_the_papers_loop_and_every_projection_removes_the_conflict(seed):
    jacobian = conflicting_jacobian(5, 40, seed)
    orders = torch.stack([torch.randperm(5, generator=torch.Generator().manual_seed(seed + i)) for i in range(5)])
    orders = torch.stack([row[row != i] for i, row in enumerate(orders)])
    expected, after = reference_pcgrad(jacobian, orders)
    coefficients = pcgrad_coefficients(jacobian @ jacobian.T, orders)
    assert torch.allclose(coefficients @ jacobian, expected, atol=1e-10)
    assert after and all(abs(value) < 1e-10 for value in after)


def test_pcgrad_draws_one_of_the_papers_orders_and_reset_replays_them():
    jacobian = conflicting_jacobian(3, 30, seed=4)
    # With 3 tasks each task visits the other two in one of 2 orders: 8 possible updates.
    candidates = []
    for choice in itertools.product((0, 1), repeat=3):
        orders = torch.tensor([[[1, 2], [2, 1]][choice[0]], [[0, 2], [2, 0]][choice[1]], [[0, 1], [1, 0]][choice[2]]])
        candidates.append(reference_pcgrad(jacobian, orders)[0].sum(dim=0))
    pcgrad = make_aggregator("pcgrad", n_tasks=3)
    first = [pcgrad(jacobian).update for _ in range(6)]
    for update in first:
        assert any(torch.allclose(update, candidate, atol=1e-10) for candidate in candidates)
    pcgrad.reset()
    assert all(torch.equal(a, pcgrad(jacobian).update) for a in first)
    other = make_aggregator("pcgrad", n_tasks=3)
    assert all(torch.equal(a, other(jacobian).update) for a in first)


# --- GradDrop -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_graddrop_keeps_one_sign_per_coordinate(seed):
    jacobian = conflicting_jacobian(4, 200, seed)
    out = aggregate("graddrop", jacobian)
    assert out.weights is None  # a per-coordinate mask: no task weights exist
    update = out.update
    positive = jacobian.clamp_min(0).sum(dim=0)
    negative = jacobian.clamp_max(0).sum(dim=0)
    # Every coordinate is the sum of its positive gradients or the sum of its negative ones.
    assert torch.all(torch.isclose(update, positive, atol=1e-12) | torch.isclose(update, negative, atol=1e-12))
    assert (update > 0).any() and (update < 0).any()


def test_graddrop_with_gradients_that_agree_in_sign_is_the_sum():
    generator = torch.Generator().manual_seed(0)
    signs = torch.randn(50, generator=generator, dtype=torch.float64).sign()
    jacobian = torch.rand(3, 50, generator=generator, dtype=torch.float64) * signs  # same sign per coordinate
    assert torch.equal(aggregate("graddrop", jacobian).update, jacobian.sum(dim=0))


def test_graddrop_keeps_the_positive_side_with_probability_the_sign_purity():
    # g1 = 3 and g2 = -1 everywhere: purity P = (1 + 2/4) / 2 = 0.75.
    jacobian = torch.stack([torch.full((20000,), 3.0), torch.full((20000,), -1.0)]).double()
    update = aggregate("graddrop", jacobian).update
    assert set(update.unique().tolist()) == {3.0, -1.0}
    assert abs((update > 0).double().mean().item() - 0.75) < 0.02


def test_graddrop_leak_lets_that_share_of_every_gradient_through():
    jacobian = conflicting_jacobian(3, 100, seed=2)
    assert torch.allclose(aggregate("graddrop", jacobian, leak=1.0).update, jacobian.sum(dim=0), atol=1e-12)
    masked = aggregate("graddrop", jacobian, leak=0.0).update  # the same first draw: seeded
    leaky = aggregate("graddrop", jacobian, leak=0.3).update
    assert torch.allclose(leaky, 0.3 * jacobian.sum(dim=0) + 0.7 * masked, atol=1e-12)


def test_graddrop_is_seeded_and_reset_replays_the_masks():
    jacobian = conflicting_jacobian(3, 300, seed=3)
    graddrop = make_aggregator("graddrop", n_tasks=3)
    first = [graddrop(jacobian).update for _ in range(3)]
    assert not torch.equal(first[0], first[1])  # a fresh mask every step
    graddrop.reset()
    assert all(torch.equal(a, graddrop(jacobian).update) for a in first)
    assert torch.equal(make_aggregator("graddrop", n_tasks=3)(jacobian).update, first[0])


# --- GradVac ------------------------------------------------------------------------------------

@pytest.mark.parametrize("tasks", (2, 4))
@pytest.mark.parametrize("seed", SEEDS)
def test_gradvac_first_step_is_pcgrad(tasks, seed):
    jacobian = conflicting_jacobian(tasks, 40, seed)
    # Targets start at 0 and both draw their orders from a generator seeded with 0.
    assert torch.allclose(aggregate("gradvac", jacobian).update, aggregate("pcgrad", jacobian).update, atol=1e-10)


def test_gradvac_targets_follow_the_papers_moving_average():
    beta = 0.2
    gradvac = make_aggregator("gradvac", n_tasks=2, beta=beta)
    expected = 0.0
    for seed in range(4):
        jacobian = conflicting_jacobian(2, 30, seed)
        cosine = (jacobian[0] @ jacobian[1] / (jacobian[0].norm() * jacobian[1].norm())).item()
        gradvac(jacobian)
        # With two tasks each visits one partner, with its own original gradient: phi = cos(g1, g2).
        expected = (1 - beta) * expected + beta * cosine
        assert gradvac.targets[0, 1].item() == pytest.approx(expected, abs=1e-12)
        assert gradvac.targets[1, 0].item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("target", (-0.3, 0.2, 0.6))
def test_gradvac_adjustment_brings_the_cosine_up_to_the_target(target):
    jacobian = conflicting_jacobian(2, 30, seed=1)
    g1, g2 = jacobian
    gradvac = make_aggregator("gradvac", n_tasks=2)
    gradvac.targets.fill_(target)
    out = gradvac(jacobian)
    # weights = column sums of C; with two tasks C = [[1, a], [b, 1]], so a = w[1] - 1, b = w[0] - 1.
    adjusted_1 = g1 + (out.weights[1] - 1) * g2
    adjusted_2 = g2 + (out.weights[0] - 1) * g1
    cos = torch.nn.functional.cosine_similarity
    assert cos(adjusted_1, g2, dim=0).item() == pytest.approx(target, abs=1e-10)
    assert cos(adjusted_2, g1, dim=0).item() == pytest.approx(target, abs=1e-10)


def test_gradvac_leaves_pairs_above_their_target_alone_and_reset_restores_step_one():
    jacobian = torch.rand(3, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gradvac = make_aggregator("gradvac", n_tasks=3, beta=0.2)
    assert torch.allclose(gradvac(jacobian).update, jacobian.sum(dim=0), atol=1e-12)  # cosines > 0 = targets
    conflicting = conflicting_jacobian(3, 20, seed=2)
    fresh = make_aggregator("gradvac", n_tasks=3, beta=0.2)(conflicting).update
    for _ in range(30):
        gradvac(jacobian)  # targets climb towards these high cosines
    assert gradvac.targets[0, 1] > 0.5
    assert not torch.allclose(gradvac(conflicting).update, fresh)
    gradvac.reset()
    assert torch.equal(gradvac.targets, torch.zeros(3, 3, dtype=torch.float64))
    assert torch.equal(gradvac(conflicting).update, fresh)


# --- Aligned-MTL --------------------------------------------------------------------------------

@pytest.mark.parametrize("tasks", (2, 3, 5))
@pytest.mark.parametrize("seed", SEEDS)
def test_aligned_mtl_system_has_condition_number_one_and_is_the_procrustes_solution(tasks, seed):
    jacobian = conflicting_jacobian(tasks, 40, seed)
    alignment = aligned_mtl_weights(jacobian @ jacobian.T, "min", torch.finfo(torch.float64).eps)
    aligned = alignment @ jacobian
    singular = torch.linalg.svdvals(aligned)
    assert singular.max() / singular.min() == pytest.approx(1.0, abs=1e-9)
    original = torch.linalg.svdvals(jacobian)
    assert singular[0].item() == pytest.approx(original.min().item(), rel=1e-9)  # the paper's scale
    # The nearest system with equal singular values (orthogonal Procrustes): sigma_min U V^T.
    u, _, vh = torch.linalg.svd(jacobian, full_matrices=False)
    assert torch.allclose(aligned, original.min() * u @ vh, atol=1e-9)
    out = aggregate("aligned_mtl", jacobian)
    assert torch.allclose(out.weights, alignment.sum(dim=1), atol=1e-12)
    assert torch.allclose(out.update, aligned.sum(dim=0), atol=1e-9)


def test_aligned_mtl_aligns_dependent_gradients_within_their_span():
    jacobian = conflicting_jacobian(3, 30, seed=0)
    jacobian[2] = jacobian[0] + 2 * jacobian[1]
    aligned = aligned_mtl_weights(jacobian @ jacobian.T, "min", torch.finfo(torch.float64).eps) @ jacobian
    singular = torch.linalg.svdvals(aligned)
    assert singular[0] == pytest.approx(singular[1].item(), rel=1e-9) and singular[2] < 1e-9 * singular[0]


@pytest.mark.parametrize(("mode", "expected"), [("median", lambda s: s.median()), ("rmse", lambda s: s.square().mean().sqrt())])
def test_aligned_mtl_scale_modes(mode, expected):
    jacobian = conflicting_jacobian(3, 30, seed=6)
    aligned = aligned_mtl_weights(jacobian @ jacobian.T, mode, torch.finfo(torch.float64).eps) @ jacobian
    singular = torch.linalg.svdvals(aligned)
    assert torch.allclose(singular, expected(torch.linalg.svdvals(jacobian)).expand(3), rtol=1e-9)


def test_aligned_mtl_ub_reads_the_features_and_weighs_like_aligned_mtl():
    jacobian = conflicting_jacobian(3, 30, seed=7)
    ub = make_aggregator("aligned_mtl_ub", n_tasks=3)
    assert ub.space == "features" and make_aggregator("aligned_mtl", n_tasks=3).space == "parameters"
    assert torch.allclose(ub(jacobian).weights, aggregate("aligned_mtl", jacobian).weights)


# --- the dual-cone solver and UPGrad ------------------------------------------------------------

def exact_dual_cone_weights(gram: np.ndarray, u: np.ndarray) -> np.ndarray:
    """min_{v >= u} v^T G v by trying every set of free coordinates (a test oracle, 2^T solves)."""
    best, best_value = None, np.inf
    size = len(u)
    for count in range(size + 1):
        for free in itertools.combinations(range(size), count):
            lam = np.zeros(size)
            if free:
                index = list(free)
                lam[index] = np.linalg.lstsq(gram[np.ix_(index, index)], -(gram @ u)[index], rcond=None)[0]
            v = u + lam
            if (lam < -1e-9).any() or (gram @ v < -1e-9 * np.trace(gram)).any():
                continue
            value = v @ gram @ v
            if value < best_value - 1e-12:
                best, best_value = v, value
    return best


@pytest.mark.parametrize("tasks", (2, 3, 4, 6))
@pytest.mark.parametrize("seed", SEEDS)
def test_dual_cone_solution_satisfies_the_kkt_conditions_and_matches_enumeration(tasks, seed):
    jacobian = conflicting_jacobian(tasks, 12, seed)
    if seed == 3 and tasks > 2:
        jacobian[-1] = jacobian[0] - jacobian[1]  # linearly dependent gradients: a singular Gram matrix
    gram = jacobian @ jacobian.T
    u = torch.eye(tasks, dtype=torch.float64)
    if seed == 2:
        u = u + torch.rand(tasks, tasks, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    result = project_to_dual_cone(gram, u)
    assert result.converged
    scale = gram.diagonal().mean().item()
    for target, v in zip(u, result.weights, strict=True):
        lam, mu = v - target, gram @ v
        assert (lam >= -1e-12).all()  # primal feasibility: v >= u
        assert (mu >= -1e-9 * scale).all()  # dual feasibility: J^T v conflicts with no task
        assert abs(lam @ mu) <= 1e-9 * scale * (1 + lam.abs().sum())  # complementary slackness
        exact = exact_dual_cone_weights(gram.numpy(), target.numpy())
        assert torch.allclose(jacobian.T @ v, jacobian.T @ torch.from_numpy(exact), atol=1e-8)


def test_dual_cone_reports_an_iteration_cap_instead_of_failing_silently():
    jacobian = conflicting_jacobian(4, 12, seed=0)
    assert not project_to_dual_cone(jacobian @ jacobian.T, torch.eye(4, dtype=torch.float64), max_solves=0).converged


@pytest.mark.parametrize("tasks", (2, 3, 6))
@pytest.mark.parametrize("seed", SEEDS)
def test_upgrad_conflicts_with_no_task(tasks, seed):
    jacobian = conflicting_jacobian(tasks, 40, seed)
    out = aggregate("upgrad", jacobian)
    assert (jacobian @ out.update >= -1e-9 * jacobian.norm(dim=1) * out.update.norm()).all()
    assert out.update.norm() > 0 and out.message is None


def test_upgrad_without_conflict_is_the_mean():
    jacobian = torch.rand(4, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = aggregate("upgrad", jacobian)
    assert torch.allclose(out.update, jacobian.mean(dim=0), atol=1e-12)
    assert torch.allclose(out.weights, torch.full((4,), 0.25, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_upgrad_is_linear_under_scaling(seed):
    jacobian = conflicting_jacobian(4, 30, seed)
    generator = torch.Generator().manual_seed(seed)
    a = torch.rand(4, 1, generator=generator, dtype=torch.float64) + 0.1
    b = torch.rand(4, 1, generator=generator, dtype=torch.float64) + 0.1
    upgrad = make_aggregator("upgrad", n_tasks=4)
    # Scale-equivariance: A(cJ) = c A(J); and (the paper's "linear under scaling") c -> A(diag(c) J)
    # is linear for c > 0.
    assert torch.allclose(upgrad(3.5 * jacobian).update, 3.5 * upgrad(jacobian).update, atol=1e-10)
    assert torch.allclose(upgrad((a + b) * jacobian).update,
                          upgrad(a * jacobian).update + upgrad(b * jacobian).update, atol=1e-10)


def test_upgrad_falls_back_to_the_mean_and_says_so_when_the_solver_stops(monkeypatch):
    jacobian = conflicting_jacobian(3, 20, seed=0)
    monkeypatch.setattr(upgrad_module, "project_to_dual_cone",
                        lambda gram, u: DualConeProjection(weights=u.clone(), converged=False))
    out = aggregate("upgrad", jacobian)
    assert torch.allclose(out.update, jacobian.mean(dim=0)) and "did not converge" in out.message


# --- ConFIG -------------------------------------------------------------------------------------

@pytest.mark.parametrize("tasks", (2, 3, 5))
@pytest.mark.parametrize("seed", SEEDS)
def test_config_has_the_same_positive_cosine_with_every_task(tasks, seed):
    jacobian = conflicting_jacobian(tasks, 40, seed)
    update = aggregate("config", jacobian).update
    cosines = jacobian @ update / (jacobian.norm(dim=1) * update.norm())
    assert (cosines > 0).all()
    assert torch.allclose(cosines, cosines.mean().expand(tasks), atol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_config_matches_the_papers_pseudo_inverse_in_parameter_space(seed):
    jacobian = conflicting_jacobian(3, 40, seed)
    units = jacobian / jacobian.norm(dim=1, keepdim=True)
    direction = torch.linalg.pinv(units) @ torch.ones(3, dtype=torch.float64)
    unit_direction = direction / direction.norm()
    expected = (jacobian @ unit_direction).sum() * unit_direction  # length: the sum of projections
    assert torch.allclose(aggregate("config", jacobian).update, expected, atol=1e-10)


# --- the registry and the knobs -----------------------------------------------------------------

@pytest.mark.parametrize("key", KEYS)
def test_registry_entries_cite_their_paper_and_their_knob_defaults_validate(key):
    entry = METHODS[key]
    assert entry.kind == "aggregation" and entry.category and entry.summary and entry.cost
    assert entry.key.isidentifier() and all(knob.help and knob.label for knob in entry.knobs)
    assert entry.paper is not None and entry.paper.arxiv and entry.paper.year >= 2020
    assert entry.formula.count("{") == entry.formula.count("}")
    assert entry.validate_params({}) == {knob.name: knob.default for knob in entry.knobs}
    assert RunConfig.parse({"method": key}).method_params == {knob.name: knob.default for knob in entry.knobs}
    assert type(make_aggregator(key, n_tasks=2)).__doc__.count("arXiv:") >= 1


@pytest.mark.parametrize(("key", "knob", "bad"), [
    ("graddrop", "leak", 1.5), ("graddrop", "leak", -0.1), ("gradvac", "beta", 0.0), ("gradvac", "beta", 2.0),
    ("aligned_mtl", "scale_mode", "max"), ("aligned_mtl_ub", "scale_mode", "mean"),
])
def test_out_of_range_knobs_are_rejected_by_name(key, knob, bad):
    with pytest.raises(ValueError, match=knob):
        make_aggregator(key, n_tasks=2, **{knob: bad})
    with pytest.raises(ConfigError, match=knob):
        RunConfig.parse({"method": key, "method_params": {knob: bad}})


def test_methods_without_knobs_reject_any_setting():
    for key in ("pcgrad", "upgrad", "config"):
        with pytest.raises(ValueError, match="no setting"):
            make_aggregator(key, n_tasks=2, seed=1)


# --- one short real training each ---------------------------------------------------------------



@pytest.mark.parametrize("key", KEYS)
def test_a_short_training_finishes_with_finite_losses_and_weights(key):
    trainer, records = short_run(key, tasks=("digit", "parity"))
    assert trainer.status == "done", trainer.message
    assert [r.step for r in records] == list(range(1, 21))
    assert all(math.isfinite(v) for r in records for v in r.loss.values())
    weights = [v for r in records for v in r.weight.values()]
    if key == "graddrop":
        assert all(math.isnan(v) for v in weights)  # no task weights: the trainer records NaN
    else:
        assert all(math.isfinite(v) for v in weights)
    probes = [r for r in records if r.cos_update is not None]
    assert len(probes) == 5 and all(math.isfinite(r.update_norm) and r.update_norm > 0 for r in probes)
    if key in ("upgrad", "config"):  # the conflict-free methods, checked on a real network's gradients
        assert all(c > -1e-4 for r in probes for c in r.cos_update.values())
    if key == "config":
        assert all(abs(r.cos_update["digit"] - r.cos_update["parity"]) < 1e-3 for r in probes)
    assert sum(records[-1].val[t]["loss"] for t in ("digit", "parity")) < sum(records[0].loss.values())


@pytest.mark.parametrize("key", ("pcgrad", "graddrop", "gradvac"))
def test_randomised_methods_give_the_same_numbers_for_the_same_config(key):
    def numbers():
        return [(r.loss, r.weight) for r in short_run(key, steps=6)[1]]

    first, second = numbers(), numbers()
    assert str(first) == str(second)  # str: NaN weights (GradDrop) compare equal as text
