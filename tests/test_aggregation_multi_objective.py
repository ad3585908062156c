"""Multi-objective aggregators (MGDA, CAGrad, IMTL-G, Nash-MTL): each paper's defining property
on random float64 Jacobians with conflicts, their small solvers against brute force, the
registry entries, and one short real training per method."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from mtl_core.config import ConfigError, RunConfig
from mtl_core.methods import METHODS, make_aggregator
from mtl_core.methods.base import Aggregation
from mtl_core.methods.cagrad import cagrad_objective, cagrad_weights
from mtl_core.methods.min_norm import frank_wolfe, min_norm_two, min_norm_weights
from mtl_core.methods.nash_mtl import nash_weights
from tests.aggregation_support import aggregate, conflicting_jacobian, short_run

KEYS = ("mgda", "cagrad", "imtl_g", "nash_mtl")
SEEDS = (0, 1, 2, 3)
SHAPES = ((2, 40), (3, 200), (5, 500), (6, 30))






def simplex_samples(tasks: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    samples = rng.dirichlet(np.full(tasks, 0.5), size=count)
    return np.concatenate([samples, np.eye(tasks)])  # the vertices too


# --- common contract (the rest is tests/test_methods_contract.py's, for every method) ------------

@pytest.mark.parametrize("key", KEYS)
def test_a_single_task_passes_its_gradient_through(key):
    jacobian = conflicting_jacobian(2, 20, seed=0)[:1]
    out = aggregate(key, jacobian, **({"max_norm": 0.0} if key == "nash_mtl" else {}))
    # CAGrad's formula still adds c |g0| / |g| g to g0 = g, then divides by 1 + c^2.
    factor = (1 + 0.5) / (1 + 0.5**2) if key == "cagrad" else 1.0
    assert torch.allclose(out.update, factor * jacobian[0], atol=1e-12)


@pytest.mark.parametrize("key", KEYS)
def test_non_finite_gradients_fall_back_and_say_so(key):
    jacobian = conflicting_jacobian(3, 20, seed=2)
    jacobian[0, 3] = math.inf
    out = aggregate(key, jacobian)
    assert out.message and "finite" in out.message
    assert torch.isfinite(out.weights).all()


# --- MGDA ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("tasks", "params"), SHAPES)
def test_mgda_update_does_not_increase_any_task_loss_to_first_order(tasks, params, seed):
    jacobian = conflicting_jacobian(tasks, params, seed)
    out = aggregate("mgda", jacobian)
    scale = jacobian.norm(dim=1).max() ** 2
    # The min-norm point u has <u, g_t> >= |u|^2 for every task (its optimality condition).
    assert (jacobian @ out.update >= out.update.norm() ** 2 - 1e-10 * scale).all()
    assert out.weights.min() >= 0 and math.isclose(out.weights.sum().item(), 1.0, rel_tol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("tasks", "params"), SHAPES)
def test_mgda_update_is_no_longer_than_any_convex_combination(tasks, params, seed):
    jacobian = conflicting_jacobian(tasks, params, seed)
    norm = aggregate("mgda", jacobian).update.norm().item()
    combinations = torch.as_tensor(simplex_samples(tasks, 3000, seed)) @ jacobian
    assert norm <= combinations.norm(dim=1).min().item() * (1 + 1e-12) + 1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_mgda_two_tasks_match_the_papers_closed_form(seed):
    jacobian = conflicting_jacobian(2, 50, seed)
    g1, g2 = jacobian
    gamma = ((g2 - g1) @ g2 / (g1 - g2).norm() ** 2).clamp(0, 1)  # Algorithm 1
    out = aggregate("mgda", jacobian)
    assert torch.allclose(out.weights, torch.stack([gamma, 1 - gamma]), atol=1e-14)
    # the clipped cases: one gradient is already the nearest point of the segment
    assert min_norm_two(1.0, 2.0, 5.0) == 1.0 and min_norm_two(5.0, 2.0, 1.0) == 0.0
    assert min_norm_two(1.0, 0.0, 1.0) == 0.5


def test_papers_frank_wolfe_approaches_the_exact_min_norm_point():
    jacobian = conflicting_jacobian(5, 100, seed=3)
    gram = (jacobian @ jacobian.T).numpy()
    gram /= gram.diagonal().max()
    exact = min_norm_weights(gram)
    assert exact.exact and exact.gap < 1e-12
    values = []
    for iterations in (5, 50, 500):
        weights, _ = frank_wolfe(gram, max_iter=iterations)
        assert weights.min() >= 0 and math.isclose(weights.sum(), 1.0, rel_tol=1e-12)
        values.append(weights @ gram @ weights)
    optimum = exact.weights @ gram @ exact.weights
    assert optimum <= values[2] <= values[1] <= values[0]
    assert values[2] - optimum < 1e-3


@pytest.mark.parametrize("seed", SEEDS)
def test_mgda_reaches_the_origin_when_the_hull_holds_it(seed):
    # Five gradients in R^3 that surround the origin: a Pareto-stationary point, no common descent.
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    jacobian = torch.cat([directions, -directions.sum(0, keepdim=True)])
    out = aggregate("mgda", jacobian)
    assert out.update.norm() < 1e-7 * jacobian.norm(dim=1).max()
    assert out.weights.min() >= 0 and math.isclose(out.weights.sum().item(), 1.0, rel_tol=1e-12)


def test_mgda_l2_normalisation_solves_on_unit_gradients_and_weighs_the_raw_ones():
    jacobian = conflicting_jacobian(4, 60, seed=1)
    out = aggregate("mgda", jacobian, normalization="l2")
    unit = jacobian / jacobian.norm(dim=1, keepdim=True)
    on_unit = out.weights @ unit
    assert (unit @ on_unit >= on_unit.norm() ** 2 - 1e-10).all()  # min-norm point of the unit gradients
    assert torch.allclose(out.update, out.weights @ jacobian)  # applied to the raw gradients
    assert not torch.allclose(out.weights, aggregate("mgda", jacobian).weights)


def test_mgda_variant_sets_the_space_the_trainer_reads():
    assert make_aggregator("mgda", n_tasks=2).space == "features"  # MGDA-UB, the paper's practice
    assert make_aggregator("mgda", n_tasks=2, variant="exact").space == "parameters"


def test_min_norm_solver_matches_brute_force_on_many_random_problems():
    rng = np.random.default_rng(0)
    for _ in range(40):
        tasks, params = int(rng.integers(3, 8)), int(rng.choice([2, 3, 10, 100]))
        jacobian = rng.normal(size=(tasks, params)) * np.exp(rng.normal(size=(tasks, 1)))
        gram = jacobian @ jacobian.T
        solution = min_norm_weights(gram)
        best = min(float(w @ gram @ w) for w in simplex_samples(tasks, 2000, 1))
        assert solution.exact
        assert solution.weights @ gram @ solution.weights <= best + 1e-12 * gram.diagonal().max()


# --- CAGrad -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("tasks", "params"), SHAPES)
def test_cagrad_with_c_zero_is_the_average_direction_on_the_sum_scale(tasks, params, seed):
    jacobian = conflicting_jacobian(tasks, params, seed)
    out = aggregate("cagrad", jacobian, c=0.0)
    # g0 (the mean), times T as the official code does "to match the sum loss": equal weighting.
    assert torch.allclose(out.update, tasks * jacobian.mean(0), atol=1e-12)
    assert torch.allclose(out.weights, torch.ones(tasks, dtype=torch.float64))


@pytest.mark.parametrize("c", (0.2, 0.5, 0.9))
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("tasks", "params"), SHAPES)
def test_cagrad_improves_the_worst_task_decrease_over_the_mean(tasks, params, seed, c):
    jacobian = conflicting_jacobian(tasks, params, seed)
    out = aggregate("cagrad", jacobian, c=c)
    direction = out.update * (1 + c**2) / tasks  # undo the official rescaling: d of the paper
    mean = jacobian.mean(0)
    scale = jacobian.norm(dim=1).max() ** 2
    assert (direction - mean).norm() <= c * mean.norm() * (1 + 1e-9)  # inside the ball
    worst, worst_of_mean = (jacobian @ direction).min(), (jacobian @ mean).min()
    assert worst >= worst_of_mean - 1e-10 * scale


@pytest.mark.parametrize("c", (0.1, 0.5, 1.0, 1.5))
@pytest.mark.parametrize("seed", SEEDS)
def test_cagrad_dual_solver_matches_a_brute_force_grid_for_two_tasks(seed, c):
    gram = (lambda j: (j @ j.T).numpy())(conflicting_jacobian(2, 30, seed))
    solution = cagrad_weights(gram, c)
    grid = np.linspace(0.0, 1.0, 100_001)
    values = [cagrad_objective(gram, np.array([g, 1 - g]), c) for g in grid[::10]]
    fine = int(np.argmin(values)) * 10
    values = [cagrad_objective(gram, np.array([g, 1 - g]), c) for g in grid[max(fine - 10, 0): fine + 11]]
    ours = cagrad_objective(gram, solution.weights, c)
    assert solution.exact
    assert ours <= min(values) + 1e-12 * gram.diagonal().max()
    assert ours >= min(values) - 1e-7 * gram.diagonal().max()  # the grid is that fine


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("tasks", "params"), SHAPES[1:])
def test_cagrad_dual_solver_beats_every_sampled_simplex_point(tasks, params, seed):
    gram = (lambda j: (j @ j.T).numpy())(conflicting_jacobian(tasks, params, seed))
    solution = cagrad_weights(gram, 0.5)
    best = min(cagrad_objective(gram, w, 0.5) for w in simplex_samples(tasks, 2000, seed))
    assert solution.exact and cagrad_objective(gram, solution.weights, 0.5) <= best + 1e-12


def test_cagrad_rescale_choices_divide_by_one_plus_c_squared_one_plus_c_or_nothing():
    jacobian = conflicting_jacobian(3, 40, seed=2)
    c = 0.5
    quadratic = aggregate("cagrad", jacobian, c=c).update
    assert torch.allclose(aggregate("cagrad", jacobian, c=c, rescale="none").update, quadratic * (1 + c**2))
    assert torch.allclose(aggregate("cagrad", jacobian, c=c, rescale="linear").update,
                          quadratic * (1 + c**2) / (1 + c))


# --- IMTL-G -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("tasks", "params"), SHAPES)
def test_imtl_g_update_has_equal_projections_on_every_unit_gradient(tasks, params, seed):
    jacobian = conflicting_jacobian(tasks, params, seed)
    out = aggregate("imtl_g", jacobian)
    projections = (jacobian / jacobian.norm(dim=1, keepdim=True)) @ out.update
    assert torch.allclose(projections, projections.mean().expand(tasks), rtol=1e-9,
                          atol=1e-10 * jacobian.norm(dim=1).max())
    assert math.isclose(out.weights.sum().item(), 1.0, rel_tol=1e-12) and out.message is None


def test_imtl_g_two_orthogonal_gradients_get_weights_that_equalise_their_norms():
    jacobian = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    out = aggregate("imtl_g", jacobian)
    # <g, u_1> = 3 a_1 and <g, u_2> = a_2 equal, a_1 + a_2 = 1: a = (1/4, 3/4), g = (3/4, 3/4).
    assert torch.allclose(out.weights, torch.tensor([0.25, 0.75], dtype=torch.float64))


def test_imtl_g_falls_back_to_the_mean_on_parallel_gradients_and_says_so():
    g = torch.randn(30, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    jacobian = torch.stack([g, 2 * g, torch.randn(30, dtype=torch.float64)])
    out = aggregate("imtl_g", jacobian)
    assert out.message and "singular" in out.message
    assert torch.allclose(out.weights, torch.full((3,), 1 / 3, dtype=torch.float64))


def test_imtl_g_gradients_knob_sets_the_space():
    assert make_aggregator("imtl_g", n_tasks=2).space == "features"  # the paper's Algorithm 1
    assert make_aggregator("imtl_g", n_tasks=2, gradients="parameters").space == "parameters"


# --- Nash-MTL -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("tasks", "params"), SHAPES)
def test_nash_mtl_weights_solve_the_bargaining_condition(tasks, params, seed):
    jacobian = conflicting_jacobian(tasks, params, seed)
    out = aggregate("nash_mtl", jacobian, max_norm=0.0)
    gram = jacobian @ jacobian.T
    gram = gram / torch.linalg.matrix_norm(gram)  # the official code's normalisation
    w = out.weights
    assert (w > 0).all() and out.message is None
    assert torch.allclose(w * (gram @ w), torch.ones(tasks, dtype=torch.float64), atol=1e-10)
    # each task's share of progress <g_t, d> is 1 / w_t, on the normalised scale
    assert torch.allclose(w * (jacobian @ out.update), torch.linalg.matrix_norm(jacobian @ jacobian.T).expand(tasks))


def test_nash_mtl_clips_the_update_to_max_norm_and_reports_the_clipped_weights():
    jacobian = conflicting_jacobian(3, 100, seed=0)
    free = aggregate("nash_mtl", jacobian, max_norm=0.0)
    clipped = aggregate("nash_mtl", jacobian, max_norm=0.5)
    assert free.update.norm() > 0.5
    assert math.isclose(clipped.update.norm().item(), 0.5, rel_tol=1e-5)
    assert torch.allclose(clipped.weights @ jacobian, clipped.update)
    assert torch.allclose(clipped.weights / clipped.weights.sum(), free.weights / free.weights.sum())


def test_nash_mtl_falls_back_on_a_pareto_stationary_jacobian_and_says_so():
    generator = torch.Generator().manual_seed(0)
    good = conflicting_jacobian(2, 50, seed=1)
    g = torch.randn(50, dtype=torch.float64, generator=generator)
    stationary = torch.stack([g, -2 * g])  # a zero convex combination: no bargaining solution
    nash = make_aggregator("nash_mtl", n_tasks=2, max_norm=0.0)
    first = nash(stationary)
    assert first.message and "did not converge" in first.message and "equal weights" in first.message
    assert torch.equal(first.weights, torch.ones(2, dtype=torch.float64))
    solved = nash(good)
    assert solved.message is None
    again = nash(stationary)
    assert "kept the previous weights" in again.message
    assert torch.equal(again.weights, solved.weights)
    nash.reset()
    assert "equal weights" in nash(stationary).message


def test_nash_mtl_survives_a_singular_but_solvable_gram_matrix():
    # Three gradients in R^2 in an open half-plane: G is singular, yet a solution exists.
    jacobian = torch.tensor([[1.0, 0.2], [0.8, 1.0], [0.3, -0.4]], dtype=torch.float64)
    out = aggregate("nash_mtl", jacobian, max_norm=0.0)
    gram = jacobian @ jacobian.T
    gram = gram / torch.linalg.matrix_norm(gram)
    assert out.message is None
    assert torch.allclose(out.weights * (gram @ out.weights), torch.ones(3, dtype=torch.float64), atol=1e-10)


def test_nash_mtl_recomputes_the_weights_only_every_n_steps():
    nash = make_aggregator("nash_mtl", n_tasks=3, update_weights_every=3, max_norm=0.0)
    jacobians = [conflicting_jacobian(3, 40, seed) for seed in range(4)]
    weights = [nash(j).weights for j in jacobians]
    assert torch.equal(weights[0], weights[1]) and torch.equal(weights[1], weights[2])
    assert not torch.allclose(weights[3], weights[0])
    nash.reset()
    assert torch.allclose(nash(jacobians[1]).weights, aggregate("nash_mtl", jacobians[1], max_norm=0.0).weights)


def test_nash_mtl_solver_is_fast_for_a_few_tasks():
    timings = {}
    for tasks in range(2, 7):
        gram = (lambda j: (j @ j.T).numpy())(conflicting_jacobian(tasks, 1000, seed=tasks))
        gram = gram / np.linalg.norm(gram)
        start = 1 / np.sqrt(gram.diagonal())
        begin = time.perf_counter()
        for _ in range(20):
            solution = nash_weights(gram, start)
        timings[tasks] = (time.perf_counter() - begin) / 20
        assert solution.residual <= 1e-12
    print("Nash-MTL solve, ms by number of tasks:", {t: round(s * 1e3, 3) for t, s in timings.items()})
    assert max(timings.values()) < 0.05  # generous: a loaded 2-core machine; typically ~0.1 ms


# --- registry and knobs -------------------------------------------------------------------------

@pytest.mark.parametrize("key", KEYS)
def test_registry_entries_are_complete_and_every_default_validates(key):
    entry = METHODS[key]
    assert entry.kind == "aggregation" and entry.paper and entry.paper.year >= 2018
    assert entry.category in {"multi-objective", "gradient balancing"}
    assert entry.formula and entry.cost and entry.summary
    defaults = entry.validate_params({})
    assert defaults == {knob.name: knob.default for knob in entry.knobs}
    aggregator = make_aggregator(key, n_tasks=3)
    assert isinstance(aggregator(conflicting_jacobian(3, 10, seed=0)), Aggregation)
    for knob in entry.knobs:
        assert knob.help.endswith(".") and knob.label


@pytest.mark.parametrize(("key", "knob", "bad"), [
    ("mgda", "variant", "approximate"), ("mgda", "normalization", "loss+"),
    ("cagrad", "c", -0.1), ("cagrad", "c", 5.0), ("cagrad", "rescale", "1+c"),
    ("imtl_g", "gradients", "shared"),
    ("nash_mtl", "update_weights_every", 0), ("nash_mtl", "optim_niter", 0),
    ("nash_mtl", "optim_niter", 2.5), ("nash_mtl", "max_norm", -1.0),
])
def test_out_of_range_knobs_are_rejected_by_name(key, knob, bad):
    with pytest.raises(ValueError, match=knob):
        make_aggregator(key, n_tasks=2, **{knob: bad})
    with pytest.raises(ConfigError, match=knob):
        RunConfig.parse({"method": key, "method_params": {knob: bad}})


@pytest.mark.parametrize(("factory", "knob", "bad"), [
    ("mtl_core.methods.mgda:MGDA", "variant", "x"), ("mtl_core.methods.cagrad:CAGrad", "c", math.nan),
    ("mtl_core.methods.imtl_g:IMTLG", "gradients", "x"),
    ("mtl_core.methods.nash_mtl:NashMTL", "max_norm", math.inf),
])
def test_the_classes_check_their_knobs_too(factory, knob, bad):
    entry = next(e for e in METHODS if e.factory == factory)
    with pytest.raises(ValueError, match=knob):
        entry.load()(n_tasks=2, **{knob: bad})


# --- one short real training each ---------------------------------------------------------------



@pytest.mark.parametrize(("key", "params"), [
    ("mgda", {}), ("mgda", {"variant": "exact"}), ("cagrad", {}), ("imtl_g", {}),
    ("imtl_g", {"gradients": "parameters"}), ("nash_mtl", {}),
])
def test_a_short_training_finishes_with_finite_losses_and_weights(key, params):
    trainer, records = short_run(key, method_params=params)
    assert trainer.status == "done" and trainer.message is None, trainer.message
    assert [r.step for r in records] == list(range(1, 21))
    assert all(math.isfinite(v) for r in records for v in r.loss.values())
    weights = [list(r.weight.values()) for r in records]
    assert all(math.isfinite(v) for w in weights for v in w)
    if key in ("mgda", "imtl_g"):
        assert all(math.isclose(sum(w), 1.0, rel_tol=1e-5) for w in weights)
    if key in ("mgda", "cagrad", "nash_mtl"):
        assert all(v >= 0 for w in weights for v in w)
    probes = [r for r in records if r.cos_update is not None]
    assert len(probes) == 5 and all(math.isfinite(r.update_norm) and r.update_norm > 0 for r in probes)
    if key == "mgda" and params.get("variant") == "exact":  # no task's loss rises, on a real network
        assert all(c > -1e-4 for r in probes for c in r.cos_update.values())
    if key == "nash_mtl":
        assert all(r.update_norm <= 1.0 + 1e-5 for r in probes)  # max_norm
    assert sum(records[-1].val[t]["loss"] for t in ("digit", "ink")) < sum(records[0].loss.values())


@pytest.mark.parametrize(("key", "params"), [("mgda", {}), ("imtl_g", {})])
def test_representation_methods_are_refused_on_an_architecture_that_shares_nothing(key, params):
    with pytest.raises(ValueError, match="shares none: pick a sharing architecture"):
        short_run(key, steps=2, arch="stl", method_params=params)


def test_nash_mtl_gives_the_same_numbers_for_the_same_config():
    # On the CPU: CUDA's backward passes are not bitwise reproducible, whatever the method.
    def numbers():
        return [(r.loss, r.weight) for r in short_run("nash_mtl", steps=6, device="cpu")[1]]

    assert numbers() == numbers()
