"""The registries: complete metadata, valid defaults, no torch needed to list them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mtl_core.architectures import ARCHITECTURES
from mtl_core.methods import METHODS
from mtl_core.registry import Knob
from mtl_core.suites import SUITES

ALL = [*SUITES, *ARCHITECTURES, *METHODS]


@pytest.mark.parametrize("entry", ALL, ids=lambda e: e.key)
def test_every_entry_has_complete_metadata_and_loads(entry):
    assert entry.name and entry.summary and entry.key.isidentifier()
    assert callable(entry.load())
    for knob in entry.knobs:
        assert knob.help and knob.label
        assert knob.validate(knob.default) == knob.default


@pytest.mark.parametrize("suite", SUITES, ids=lambda e: e.key)
def test_suites_name_their_tasks_and_metrics(suite):
    assert suite.tasks and set(suite.default_tasks) <= set(suite.task_names)
    for task in suite.tasks:
        assert task.help and task.metric in {"accuracy", "mae", "mse", "rmse"}
        assert task.higher_is_better == (task.metric == "accuracy")


@pytest.mark.parametrize("method", METHODS, ids=lambda e: e.key)
def test_methods_state_formula_cost_category_and_paper(method):
    assert method.formula and method.cost and method.category
    assert method.kind in {"weighting", "aggregation"}
    if method.key not in {"ew", "static"}:  # the two baselines have no paper of their own
        paper = method.paper
        assert paper is not None and paper.authors and paper.venue and 2015 <= paper.year <= 2026
        # IMTL (ICLR 2021) was published on OpenReview only: no arXiv id to give.
        assert paper.arxiv or method.key in {"imtl_l", "imtl_g"}, method.key
    for knob in method.knobs:
        if knob.kind in {"float", "int"}:
            assert knob.low is not None and knob.high is not None, f"{method.key}.{knob.name}: give its range"


def test_the_issue_methods_are_all_registered():
    weightings = {"ew", "static", "uw", "gradnorm", "dwa", "rlw", "gls", "imtl_l", "famo"}
    aggregations = {"mgda", "pcgrad", "graddrop", "gradvac", "cagrad", "imtl_g", "nash_mtl",
                    "aligned_mtl", "upgrad", "config"}
    assert {m.key for m in METHODS if m.kind == "weighting"} == weightings
    assert aggregations <= {m.key for m in METHODS if m.kind == "aggregation"}


def test_knob_validation():
    knob = Knob(name="alpha", label="Alpha", default=1.5, low=0, high=3, help="x")
    assert knob.validate("2.5") == 2.5
    with pytest.raises(ValueError, match="between 0 and 3"):
        knob.validate(4)
    with pytest.raises(ValueError, match="must be a number"):
        knob.validate(True)
    flag = Knob(name="on", label="On", default=True, kind="bool", help="x")
    assert flag.validate("false") is False
    choice = Knob(name="mode", label="Mode", default="a", kind="choice", choices=("a", "b"), help="x")
    with pytest.raises(ValueError, match="one of a, b"):
        choice.validate("c")


def test_listing_and_validating_never_imports_torch():
    code = ("import sys; from mtl_core.config import RunConfig; RunConfig(); "
            "from mtl_core.suites import SUITES; [s.tasks for s in SUITES]; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
