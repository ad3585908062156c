"""What every registered method owes the trainer, the pages and the catalogue, tested for each
entry of the registry: a method added to ``METHODS`` is tested here without editing a list.

Gradient aggregations: a finite update of shape [P] in the Jacobian's dtype, equal to
``weights @ J`` where there are weights, the same numbers from two fresh instances and again after
``reset()``. Loss weightings: finite weights of shape [T], non-negative. Every entry: complete
metadata, a Try it set-up that validates, factory defaults equal to the knob defaults, and no torch
import when the methods are only listed."""

from __future__ import annotations

import inspect
import math
import pkgutil
import subprocess
import sys

import pytest
import torch

import mtl_core.methods
from mtl_core.config import ConfigError, RunConfig
from mtl_core.methods import METHODS, make_aggregator, make_weighting
from mtl_core.methods.base import FLOAT32_EPS, TrainerHooks
from mtl_core.registry import MethodInfo
from tests.aggregation_support import conflicting_jacobian

AGGREGATIONS = [entry for entry in METHODS if entry.kind == "aggregation"]
WEIGHTINGS = [entry for entry in METHODS if entry.kind == "weighting"]
NO_PAPER = {"ew", "static"}  # the two baselines have no paper of their own
# Every loss weighting registered weighs each loss by a non-negative number, as its paper does; a
# method whose weights may turn negative would be named here.
MAY_WEIGH_NEGATIVELY: set[str] = set()
STEPS = 4


def key_of(entry: MethodInfo) -> str:
    return entry.key


# --- every entry ---------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", METHODS, ids=key_of)
def test_entry_is_complete_and_its_try_it_validates(entry):
    assert entry.key.isidentifier() and entry.name and entry.summary and entry.category
    assert entry.kind in {"weighting", "aggregation"}
    assert entry.formula and entry.formula.count("{") == entry.formula.count("}")
    assert entry.cost
    assert entry.paper is not None or entry.key in NO_PAPER, f"{entry.key} cites no paper"
    for knob in entry.knobs:
        assert knob.label and knob.help, f"{entry.key}.{knob.name} lacks a label or help"
    config = RunConfig.parse(entry.extra["try_it"]["config"])
    assert config.method == entry.key


@pytest.mark.parametrize("entry", METHODS, ids=key_of)
def test_module_and_class_name_the_paper(entry):
    factory = entry.load()
    if entry.paper is None:
        return
    first_author = entry.paper.authors.split(",")[0].split("&")[0].strip()
    module_doc = sys.modules[factory.__module__].__doc__
    assert first_author in module_doc and str(entry.paper.year) in module_doc, module_doc
    if entry.paper.arxiv:
        assert f"arXiv:{entry.paper.arxiv}" in factory.__doc__


@pytest.mark.parametrize("entry", METHODS, ids=key_of)
def test_factory_defaults_are_the_knob_defaults(entry):
    """The knobs' defaults live in the registry and in the factory's signature: they must agree."""
    parameters = dict(inspect.signature(entry.load()).parameters)
    assert "n_tasks" in parameters
    del parameters["n_tasks"]
    knobs = {knob.name: knob.default for knob in entry.knobs}
    assert set(parameters) == set(knobs), f"{entry.key}: factory keywords {sorted(parameters)} vs knobs {sorted(knobs)}"
    for name, parameter in parameters.items():
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, f"{entry.key}.{name} is not keyword-only"
        assert parameter.default == knobs[name], f"{entry.key}.{name}: {parameter.default!r} != {knobs[name]!r}"
    assert entry.validate_params({}) == knobs
    assert RunConfig.parse({"method": entry.key}).method_params == knobs


def out_of_range(entry: MethodInfo) -> list[tuple[str, object]]:
    bad = []
    for knob in entry.knobs:
        if knob.kind == "choice":
            bad.append((knob.name, "no-such-choice"))
        elif knob.kind == "floats":
            bad += [(knob.name, f"{knob.high * 2}"), (knob.name, f"{knob.low - 1}")]
        elif knob.kind in {"float", "int"}:
            bad += [(knob.name, knob.high * 2 + 1), (knob.name, knob.low - 1)]
    return bad


@pytest.mark.parametrize("entry", METHODS, ids=key_of)
def test_out_of_range_knobs_are_refused_by_name(entry):
    make = make_aggregator if entry.kind == "aggregation" else make_weighting
    for name, value in out_of_range(entry):
        with pytest.raises(ValueError, match=name):
            make(entry.key, 2, **{name: value})
        with pytest.raises(ConfigError, match=name):
            RunConfig.parse({"method": entry.key, "method_params": {name: value}})


def test_listing_the_methods_imports_no_torch_nor_numpy():
    """Every page lists the methods, and each method module holds its entry: importing all of them
    must not import torch (~1.5 s) or numpy."""
    names = [info.name for info in pkgutil.iter_modules(mtl_core.methods.__path__)]
    assert {"base", "pcgrad", "uncertainty"} <= set(names)
    code = ("import importlib, sys; import mtl_core.methods; "
            f"[importlib.import_module('mtl_core.methods.' + name) for name in {names!r}]; "
            "loaded = [name for name in ('torch', 'numpy') if name in sys.modules]; "
            "assert not loaded, f'imported {loaded}'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_float32_epsilon_written_out_is_torchs():
    assert torch.finfo(torch.float32).eps == FLOAT32_EPS


# --- gradient aggregations -------------------------------------------------------------------------

def run_aggregation(key: str, jacobians: list[torch.Tensor]):
    aggregator = make_aggregator(key, n_tasks=jacobians[0].shape[0])
    first = [aggregator(jacobian) for jacobian in jacobians]
    aggregator.reset()
    again = [aggregator(jacobian) for jacobian in jacobians]
    return first, again


def same(a, b) -> bool:
    return torch.equal(a.update, b.update) and (
        (a.weights is None and b.weights is None) or torch.equal(a.weights, b.weights)) and a.message == b.message


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("tasks", [2, 3, 4])
@pytest.mark.parametrize("entry", AGGREGATIONS, ids=key_of)
def test_aggregation_update_is_weights_at_jacobian_and_reset_replays_it(entry, tasks, dtype):
    jacobians = [conflicting_jacobian(tasks, 30, seed=5 + step).to(dtype) for step in range(STEPS)]
    first, again = run_aggregation(entry.key, jacobians)
    for jacobian, out in zip(jacobians, first, strict=True):
        assert out.update.shape == (30,) and out.update.dtype == dtype
        assert torch.isfinite(out.update).all() and out.message is None, out.message
        if out.weights is not None:
            assert out.weights.shape == (tasks,) and out.weights.dtype == dtype
            assert torch.allclose(out.weights @ jacobian, out.update, rtol=1e-5, atol=1e-5)
    assert all(same(a, b) for a, b in zip(first, again, strict=True)), "reset() did not replay the run"
    fresh, _ = run_aggregation(entry.key, jacobians)
    assert all(same(a, b) for a, b in zip(first, fresh, strict=True)), "two fresh runs differ"


@pytest.mark.parametrize("entry", AGGREGATIONS, ids=key_of)
def test_zero_gradients_give_a_finite_update(entry):
    jacobian = conflicting_jacobian(3, 20, seed=1)
    jacobian[2] = 0.0
    out = make_aggregator(entry.key, n_tasks=3)(jacobian)
    assert torch.isfinite(out.update).all()
    assert out.weights is None or torch.isfinite(out.weights).all()
    out = make_aggregator(entry.key, n_tasks=3)(torch.zeros(3, 20, dtype=torch.float64))
    assert torch.equal(out.update, torch.zeros(20, dtype=torch.float64))
    assert out.weights is None or torch.isfinite(out.weights).all()


# --- loss weightings -----------------------------------------------------------------------------

def run_weighting(key: str, tasks: int, steps: int = 6) -> list[tuple[torch.Tensor, float]]:
    """A few steps as the trainer takes them, on losses of very different scales: weights, the
    objective, a step of the weighting's own parameters (SGD), ``after_step``."""
    torch.manual_seed(3)  # RLW seeds its draws from the torch seed at construction
    weighting = make_weighting(key, tasks)
    generator = torch.Generator().manual_seed(0)
    scales = torch.logspace(0, 2, tasks)
    now = {}
    weighting.attach(TrainerHooks(last_shared_grad_norms=lambda losses: scales.sqrt() * losses.detach(),
                                  losses_now=lambda: now["losses"] * 0.9, steps_per_epoch=2))
    parameters = list(weighting.parameters())
    optimizer = torch.optim.SGD(parameters, lr=0.1) if parameters else None
    seen = []
    for replay in range(2):
        if replay:
            weighting.reset()
            generator.manual_seed(0)
        for step in range(1, steps + 1):
            x = torch.rand(tasks, generator=generator).requires_grad_()
            losses = scales * (x + 0.1)
            now["losses"] = losses.detach()
            weights = weighting.weights(losses, step)
            objective = (weights * losses).sum() + weighting.regularizer()
            objective.backward()
            if optimizer is not None:
                optimizer.step()
                optimizer.zero_grad()
            weighting.after_step(step)
            seen.append((weights.detach().clone(), objective.item()))
    return seen


@pytest.mark.parametrize("tasks", [2, 3, 4])
@pytest.mark.parametrize("entry", WEIGHTINGS, ids=key_of)
def test_weighting_weights_are_finite_non_negative_and_reset_replays_them(entry, tasks):
    seen = run_weighting(entry.key, tasks)
    for weights, objective in seen:
        assert weights.shape == (tasks,) and weights.dtype == torch.float32
        assert torch.isfinite(weights).all() and math.isfinite(objective)
        if entry.key not in MAY_WEIGH_NEGATIVELY:
            assert (weights >= 0).all(), weights
    first, again = seen[: len(seen) // 2], seen[len(seen) // 2:]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True)), "reset() did not replay"
    fresh = run_weighting(entry.key, tasks)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(seen, fresh, strict=True)), "two fresh runs differ"
