"""Loss weightings: each method's property from its paper, its knobs, and a short real training."""

from __future__ import annotations

import math

import pytest
import torch

from mtl_core.config import ConfigError, RunConfig
from mtl_core.engine.trainer import Trainer
from mtl_core.methods import METHODS, make_weighting
from mtl_core.methods.base import TrainerHooks, Weighting
from mtl_core.registry import Knob, parse_floats

WEIGHTINGS = [entry for entry in METHODS if entry.kind == "weighting"]
SEEDS = [0, 1, 2]


def hooks(*, norms=None, losses_now=None, steps_per_epoch: int = 10) -> TrainerHooks:
    """Hooks as the trainer lends them, with known answers."""
    return TrainerHooks(last_shared_grad_norms=lambda losses: norms,
                        losses_now=lambda: losses_now(), steps_per_epoch=steps_per_epoch)


def conflicting_problem(seed: int, tasks: int = 3, params: int = 20):
    """Task losses of one parameter vector, in float64, whose gradients conflict: L_t =
    softplus(a_t . x) + 0.01 t |x - c_t|^2, with a_1 near -a_0 so tasks 0 and 1 pull apart."""
    generator = torch.Generator().manual_seed(seed)
    a = 2 * torch.randn(tasks, params, generator=generator, dtype=torch.float64)
    a[1] = -a[0] + 0.1 * a[1]
    centres = torch.randn(tasks, params, generator=generator, dtype=torch.float64)
    x = (0.05 * torch.randn(params, generator=generator, dtype=torch.float64)).requires_grad_()

    def losses(x=x):
        return torch.nn.functional.softplus(a @ x) + 0.01 * ((x - centres) ** 2).sum(dim=1) * torch.arange(
            1, tasks + 1, dtype=torch.float64)

    return x, losses


@pytest.mark.parametrize("seed", SEEDS)
def test_the_problem_has_conflicting_gradients(seed):
    x, losses = conflicting_problem(seed)
    jacobian = torch.stack([torch.autograd.grad(loss, x, retain_graph=True)[0] for loss in losses()])
    assert (jacobian[0] @ jacobian[1]) < 0


# --- knobs -----------------------------------------------------------------------------------

def test_floats_knob_reads_lists_and_writes_one_canonical_text():
    knob = Knob(name="weights", label="Weights", kind="floats", default="", low=0.0, high=10.0, help="x")
    assert knob.validate("") == "" and knob.validate("  ") == ""
    assert knob.validate("1, 0.5") == "1, 0.5"
    assert knob.validate("1,0.50") == "1, 0.5"
    assert knob.validate([2, 0.25, 1e-3]) == "2, 0.25, 0.001"
    canonical = knob.validate(" 3 ,0.1,7.0 ")
    assert knob.validate(canonical) == canonical == "3, 0.1, 7"
    assert parse_floats(canonical) == (3.0, 0.1, 7.0) and parse_floats("") == ()
    for bad, words in [("1, -0.5", "at least 0"), ("1, 11", "at most 10"), ("1, a", "list of finite numbers"),
                       ("1,,2", "empty entry"), ("nan, 1", "finite"), (3, "comma-separated")]:
        with pytest.raises(ValueError, match="weights") as caught:
            knob.validate(bad)
        assert words in str(caught.value)


@pytest.mark.parametrize("entry", WEIGHTINGS, ids=lambda e: e.key)
def test_every_knob_default_validates_and_out_of_range_values_name_the_knob(entry):
    assert entry.category and entry.formula and entry.cost and entry.summary
    assert entry.key == "ew" or entry.key == "static" or (entry.paper and entry.paper.year >= 2018)
    for knob in entry.knobs:
        assert knob.validate(knob.default) == knob.default
        make_weighting(entry.key, 2, **{knob.name: knob.default})
        too_big = (f"{knob.high * 2}" if knob.kind == "floats" else knob.high * 2 + 1)
        too_small = (f"{knob.low - 1}" if knob.kind == "floats" else knob.low - 1)
        for bad in (too_big, too_small):
            with pytest.raises(ValueError, match=knob.name):
                make_weighting(entry.key, 2, **{knob.name: bad})


def test_static_weights_must_match_the_tasks_in_the_config_and_in_the_factory():
    base = {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "static"}
    config = RunConfig.parse({**base, "method_params": {"weights": "1,0.5"}})
    assert config.method_params == {"weights": "1, 0.5"}
    assert RunConfig.from_query(config.to_query()) == config
    assert RunConfig.parse({**base}).method_params == {"weights": ""}
    with pytest.raises(ConfigError) as caught:
        RunConfig.parse({**base, "method_params": {"weights": "1, 0.5, 2"}})
    assert "weights lists 3 numbers for 2 tasks (digit, ink)" in caught.value.problems[0]
    with pytest.raises(ValueError, match="3 weights given for 2 tasks"):
        make_weighting("static", 2, weights="1, 0.5, 2")
    with pytest.raises(ValueError, match="at least one weight must be positive"):
        make_weighting("static", 2, weights="0, 0")
    weighting = make_weighting("static", 2, weights="1, 0.5")
    losses = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert weighting.weights(losses, 1).tolist() == [1.0, 0.5]
    assert weighting.weights(losses, 1).dtype == torch.float64
    assert make_weighting("static", 3).weights(losses.repeat(2)[:3], 1).tolist() == [1.0, 1.0, 1.0]


# --- what the trainer uses of a weighting ------------------------------------------------------

class TwoParameters(Weighting):
    def __init__(self, n_tasks: int) -> None:
        super().__init__(n_tasks)
        self.second = torch.nn.Parameter(torch.ones(n_tasks))
        self.plain = torch.zeros(n_tasks)  # neither a parameter nor a buffer: to() leaves it
        self.first = torch.nn.Parameter(torch.zeros(n_tasks))
        self.register_buffer("fixed", torch.arange(n_tasks))
        self.register_buffer("scale", torch.full((n_tasks,), 0.5))


def test_a_weighting_finds_and_moves_its_tensors_as_an_nn_module_would():
    # Weighting is no nn.Module, so that listing the methods never imports torch; what the trainer
    # uses of one -- parameters() for its optimiser, to(device) -- must behave the same.
    weighting = TwoParameters(3)
    module = torch.nn.Module()
    module.second, module.first = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.zeros(3))
    assert [p.tolist() for p in weighting.parameters()] == [p.tolist() for p in module.parameters()]
    weighting.first = torch.nn.Parameter(torch.full((3,), 2.0))  # replaced: it keeps its place
    assert [p.tolist() for p in weighting.parameters()] == [[1.0] * 3, [2.0] * 3]
    parameters = list(weighting.parameters())
    optimizer = torch.optim.SGD(weighting.parameters(), lr=0.5)
    assert weighting.double() is weighting
    assert [id(p) for p in weighting.parameters()] == [id(p) for p in parameters]  # moved in place
    assert all(p.dtype == torch.float64 for p in parameters)
    assert weighting.scale.dtype == torch.float64 and weighting.fixed.dtype == torch.int64
    assert weighting.plain.dtype == torch.float32
    (weighting.first.sum() + weighting.second.sum()).backward()
    optimizer.step()  # the optimiser made before the move still updates the parameters
    assert weighting.first.tolist() == [1.5] * 3 and weighting.second.tolist() == [0.5] * 3
    assert weighting.to("cpu").first is parameters[1] and weighting.first.grad.dtype == torch.float64
    assert list(make_weighting("static", 2, weights="1, 0.5").parameters()) == []
    assert [p is w.log_variance for w in [make_weighting("uw", 2)] for p in w.parameters()] == [True]


# --- uncertainty weighting ---------------------------------------------------------------------

def test_uncertainty_weights_are_one_over_two_sigma_squared():
    weighting = make_weighting("uw", 3).double()
    sigma = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    with torch.no_grad():
        weighting.log_variance.copy_(torch.log(sigma**2))
    losses = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(weighting.weights(losses, 1), 1 / (2 * sigma**2))
    torch.testing.assert_close(torch.as_tensor(weighting.regularizer()), torch.log(sigma).sum())


@pytest.mark.parametrize("seed", SEEDS)
def test_uncertainty_stationary_point_is_sigma_squared_equal_to_the_loss(seed):
    losses = torch.rand(3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 50 + 0.01
    weighting = make_weighting("uw", 3).double()
    optimizer = torch.optim.Adam(weighting.parameters(), lr=0.05)
    for step in range(1, 1500):
        optimizer.zero_grad()
        ((weighting.weights(losses, step) * losses).sum() + weighting.regularizer()).backward()
        optimizer.step()
    torch.testing.assert_close(weighting.log_variance.exp().detach(), losses, rtol=1e-3, atol=1e-6)


# --- IMTL-L --------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_imtl_l_makes_the_scaled_losses_equal_to_one(seed):
    losses = torch.rand(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 100 + 0.01
    weighting = make_weighting("imtl_l", 4).double()
    assert weighting.weights(losses, 1).tolist() == [1.0] * 4  # starts as equal weighting
    optimizer = torch.optim.Adam(weighting.parameters(), lr=0.05)
    for step in range(1, 1500):
        optimizer.zero_grad()
        ((weighting.weights(losses, step) * losses).sum() + weighting.regularizer()).backward()
        optimizer.step()
    scaled = weighting.weights(losses, 0).detach() * losses
    torch.testing.assert_close(scaled, torch.ones(4, dtype=torch.float64), rtol=1e-3, atol=1e-3)


# --- GLS -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_gls_weights_give_the_gradient_of_the_geometric_mean(seed):
    x, task_losses = conflicting_problem(seed)
    losses = task_losses()
    weights = make_weighting("gls", 3).weights(losses, 1)
    assert not weights.requires_grad
    (weighted,) = torch.autograd.grad((weights * losses).sum(), x)
    (geometric,) = torch.autograd.grad(task_losses().prod() ** (1 / 3), x)
    torch.testing.assert_close(weighted, geometric, rtol=1e-10, atol=1e-12)
    # A task with a smaller loss weighs more.
    order = losses.detach().argsort()
    assert (weights[order].diff() < 0).all()


# --- RLW -----------------------------------------------------------------------------------------

def test_rlw_weights_are_a_fresh_random_point_of_the_simplex_each_step_and_reproducible():
    torch.manual_seed(3)
    first = make_weighting("rlw", 4)
    losses = torch.ones(4, dtype=torch.float64)
    draws = torch.stack([first.weights(losses, step) for step in range(1, 201)])
    assert draws.dtype == torch.float64 and (draws > 0).all()
    torch.testing.assert_close(draws.sum(dim=1), torch.ones(200, dtype=torch.float64))
    assert not torch.equal(draws[0], draws[1])
    assert (draws.diff(dim=0).abs().sum(dim=1) > 0).all()
    # Unbiased: the average weight is 1/T per task (softmax of i.i.d. draws is exchangeable).
    torch.testing.assert_close(draws.mean(dim=0), torch.full((4,), 0.25, dtype=torch.float64), atol=0.03, rtol=0)
    torch.manual_seed(3)
    second = make_weighting("rlw", 4)
    assert torch.equal(torch.stack([second.weights(losses, s) for s in range(1, 201)]), draws)
    first.reset()
    assert torch.equal(first.weights(losses, 1), draws[0])
    torch.manual_seed(4)
    assert not torch.equal(make_weighting("rlw", 4).weights(losses, 1), draws[0])


# --- DWA -----------------------------------------------------------------------------------------

def test_dwa_is_equal_for_two_epochs_then_favours_the_task_whose_loss_falls_slower():
    weighting = make_weighting("dwa", 3, window=2, temperature=2.0)
    seen = []
    for step in range(1, 9):
        # Task 0 halves every window, task 1 falls by 10%, task 2 stays.
        epoch = (step - 1) // 2
        losses = torch.tensor([0.5**epoch, 0.9**epoch, 1.0], dtype=torch.float64)
        seen.append(weighting.weights(losses, step))
    for weights in seen[:4]:
        assert weights.tolist() == [1.0, 1.0, 1.0]
    ratios = torch.tensor([0.5, 0.9, 1.0], dtype=torch.float64)
    expected = 3 * torch.softmax(ratios / 2.0, dim=0)
    for weights in seen[4:]:
        torch.testing.assert_close(weights, expected)
        assert weights[0] < weights[1] < weights[2]
        assert math.isclose(weights.sum().item(), 3.0)


def test_dwa_window_zero_counts_true_epochs():
    weighting = make_weighting("dwa", 2, window=0)
    weighting.attach(hooks(steps_per_epoch=3))
    for step in range(1, 7):
        loss = 1.0 if step <= 3 else 0.5
        assert weighting.weights(torch.tensor([loss, 1.0]), step).tolist() == [1.0, 1.0]
    weights = weighting.weights(torch.tensor([0.5, 1.0]), 7)
    assert weights[1] > weights[0] and math.isclose(weights.sum().item(), 2.0, rel_tol=1e-6)


# --- GradNorm ------------------------------------------------------------------------------------

def _gradnorm_gaps(weighting, norms, initial_losses, losses, steps, lr=0.01):
    """Run the GradNorm update (with Adam, as the trainer does) on fixed gradient norms; return
    the GradNorm loss sum_t |G_t - G_bar r_t^alpha| at every step."""
    weighting.attach(hooks(norms=norms))
    optimizer = torch.optim.Adam(weighting.parameters(), lr=lr)
    weighting.weights(initial_losses, 0)  # records L(0)
    weighting.after_step(0)
    gaps = []
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        weights = weighting.weights(losses, step)
        assert math.isclose(weights.sum().item(), 2.0, rel_tol=1e-12) and (weights > 0).all()
        rates = (losses / initial_losses) / (losses / initial_losses).mean()
        weighted_norms = weights * norms
        gaps.append((weighted_norms - weighted_norms.mean() * rates**weighting.alpha).abs().sum().item())
        loss = weighting.regularizer()
        assert math.isclose(loss.item(), gaps[-1], rel_tol=1e-9)
        loss.backward()
        optimizer.step()
        weighting.after_step(step)
    return gaps


def test_gradnorm_equalises_gradient_norms_when_tasks_train_at_the_same_rate():
    weighting = make_weighting("gradnorm", 2).double()
    norms = torch.tensor([1.0, 4.0], dtype=torch.float64)
    losses = torch.tensor([2.0, 2.0], dtype=torch.float64)
    gaps = _gradnorm_gaps(weighting, norms, losses, losses, steps=300)
    assert gaps[0] == pytest.approx(3.0)
    assert max(gaps[-20:]) < 0.05 * gaps[0]
    # The weights that balance the norms: w_t ∝ 1 / ||grad L_t||, summing to T.
    torch.testing.assert_close(weighting.task_weights.detach(),
                               torch.tensor([1.6, 0.4], dtype=torch.float64), atol=0.03, rtol=0)


def test_gradnorm_gives_the_slower_task_a_gradient_larger_by_r_to_the_alpha():
    norms = torch.tensor([1.0, 3.0], dtype=torch.float64)
    initial = torch.tensor([1.0, 1.0], dtype=torch.float64)
    losses = torch.tensor([0.5, 1.0], dtype=torch.float64)  # task 1 has not trained: r = (2/3, 4/3)
    weighting = make_weighting("gradnorm", 2, alpha=1.0).double()
    gaps = _gradnorm_gaps(weighting, norms, initial, losses, steps=300)
    assert max(gaps[-20:]) < 0.05 * gaps[0]
    gradient_norms = weighting.task_weights.detach() * norms
    assert (gradient_norms[1] / gradient_norms[0]).item() == pytest.approx(2.0, rel=0.03)


def test_gradnorm_reaches_the_least_gap_its_targets_allow_when_alpha_is_not_one():
    # With alpha = 1.5, sum_t r_t^alpha != T, so the targets sum to more than the norms do and
    # sum_t |G_t - target_t| >= G_bar |T - sum_t r_t^alpha|: GradNorm should reach that bound.
    norms = torch.tensor([4.0, 1.0], dtype=torch.float64)  # the faster task has the larger gradient
    initial = torch.tensor([1.0, 1.0], dtype=torch.float64)
    losses = torch.tensor([0.5, 1.0], dtype=torch.float64)
    rates = torch.tensor([2 / 3, 4 / 3], dtype=torch.float64)
    weighting = make_weighting("gradnorm", 2, alpha=1.5).double()
    gaps = _gradnorm_gaps(weighting, norms, initial, losses, steps=300)
    gradient_norms = weighting.task_weights.detach() * norms
    bound = gradient_norms.mean() * (2 - (rates**1.5).sum()).abs()
    assert gaps[0] > 10 * bound  # equal weights are far from it
    assert max(gaps[-20:]) < 1.05 * bound
    # The slower task ends with the larger gradient, near (r_1 / r_0)^alpha (exactly so only
    # when the targets are reachable).
    assert (gradient_norms[1] / gradient_norms[0]).item() == pytest.approx(2.0**1.5, rel=0.1)


def test_gradnorm_keeps_equal_weights_and_says_so_when_nothing_is_shared():
    weighting = make_weighting("gradnorm", 2)
    weighting.attach(hooks(norms=None))
    assert weighting.weights(torch.tensor([1.0, 2.0]), 1).tolist() == [1.0, 1.0]
    assert weighting.regularizer() == 0.0
    assert "shares none" in weighting.message


# --- FAMO ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_famo_implied_weights_give_the_gradient_of_its_log_loss_objective(seed):
    x, task_losses = conflicting_problem(seed)
    weighting = make_weighting("famo", 3)
    losses = task_losses()
    weighting.weights(losses, 1)
    with torch.no_grad():
        weighting.logits.copy_(torch.tensor([0.3, -1.0, 0.5], dtype=torch.float64))
    weights = weighting.weights(losses, 1)
    z = torch.softmax(weighting.logits.detach(), dim=0)
    c = (z / (losses.detach() + 1e-8)).sum()
    (weighted,) = torch.autograd.grad((weights * losses).sum(), x, retain_graph=True)
    (objective,) = torch.autograd.grad((z * torch.log(losses + 1e-8)).sum() / c, x)
    torch.testing.assert_close(weighted, objective, rtol=1e-10, atol=1e-12)
    assert math.isclose(weights.sum().item(), 1.0, rel_tol=1e-12) and (weights > 0).all()


def test_famo_gives_more_weight_to_the_task_whose_loss_fell_least():
    after = torch.tensor([0.5, 0.9, 0.7], dtype=torch.float64)
    weighting = make_weighting("famo", 3)
    weighting.attach(hooks(losses_now=lambda: after))
    before = torch.ones(3, dtype=torch.float64)
    for step in range(1, 6):
        weighting.weights(before, step)
        weighting.after_step(step)
        z = weighting.task_distribution()
        assert math.isclose(z.sum().item(), 1.0, rel_tol=1e-12) and (z > 0).all()
        assert z[1] > z[2] > z[0]  # task 1 fell least, task 0 most
    weights = weighting.weights(before, 6)
    assert weights[1] > weights[2] > weights[0] and math.isclose(weights.sum().item(), 1.0, rel_tol=1e-9)


@pytest.mark.parametrize("after_ratio", [(0.8, 0.8, 0.8), (0.5, 0.9, 0.7)])
def test_famo_weights_stay_near_equal_only_while_all_losses_fall_at_the_same_rate(after_ratio):
    weighting = make_weighting("famo", 3)
    before = torch.tensor([4.0, 1.0, 0.1], dtype=torch.float64)
    after = torch.tensor(after_ratio, dtype=torch.float64) * before
    weighting.attach(hooks(losses_now=lambda: after))
    deviation = []
    for step in range(1, 51):
        weighting.weights(before, step)
        weighting.after_step(step)
        deviation.append((weighting.task_distribution() - 1 / 3).abs().max().item())
    if len(set(after_ratio)) == 1:
        # Equal rates give the logits a zero gradient (up to the paper's 1e-8 in the logs, which
        # Adam's per-coordinate scaling turns into a wobble of about its step size).
        assert max(deviation) < 0.02
    else:
        assert deviation[-1] > 0.1


# --- a real training of each -------------------------------------------------------------------

TRAIN_PARAMS = {"static": {"weights": "1, 0.5"}, "dwa": {"window": 4}}


@pytest.mark.parametrize("entry", WEIGHTINGS, ids=lambda e: e.key)
def test_each_weighting_trains_digit_attributes_with_finite_losses_and_weights(entry):
    config = RunConfig.parse({
        "suite": "digit_attributes", "tasks": ["digit", "ink"], "method": entry.key,
        "method_params": TRAIN_PARAMS.get(entry.key, {}), "steps": 16, "batch_size": 32,
        "eval_every": 16, "probe_every": 8, "snapshot_every": 0, "device": "cpu"})
    trainer = Trainer(config)
    records = list(trainer.run())
    assert trainer.status == "done" and trainer.message is None
    assert [r.step for r in records] == list(range(1, 17))
    for record in records:
        assert all(math.isfinite(v) for v in record.loss.values())
        assert all(math.isfinite(v) and v >= 0 for v in record.weight.values())
    weights = [list(r.weight.values()) for r in records]
    if entry.key == "static":
        assert all(w == [1.0, 0.5] for w in weights)
    if entry.key in {"uw", "gradnorm", "imtl_l", "rlw", "gls", "famo", "dwa"}:
        assert weights[-1] != weights[0], "an adaptive weighting never moved its weights"
    if entry.key in {"gradnorm", "dwa"}:
        assert all(math.isclose(sum(w), 2.0, rel_tol=1e-5) for w in weights)
    if entry.key in {"rlw", "famo"}:
        assert all(math.isclose(sum(w), 1.0, rel_tol=1e-5) for w in weights)


def test_gradnorm_on_an_architecture_that_shares_nothing_trains_with_equal_weights_and_says_why():
    config = RunConfig.parse({"suite": "digit_attributes", "tasks": ["digit", "ink"], "arch": "stl",
                              "method": "gradnorm", "steps": 3, "batch_size": 32, "eval_every": 3,
                              "snapshot_every": 0, "device": "cpu"})
    trainer = Trainer(config)
    records = list(trainer.run())
    assert trainer.status == "done" and "shares none" in trainer.message
    assert all(r.weight == {"digit": 1.0, "ink": 1.0} for r in records)
