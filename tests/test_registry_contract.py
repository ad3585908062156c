"""Contracts every registered suite and architecture keeps, read from the registries: a new entry
is tested here without editing a list. (Methods: tests/test_methods_contract.py; every
architecture trained on every suite: tests/test_architectures.py, over the same registries.)"""

from __future__ import annotations

import pytest

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import RunConfig
from mtl_core.suites import SUITES, build_suite
from tests.suite_support import OFFLINE

ARCH_KEYS = ARCHITECTURES.keys()
SUITE_KEYS = OFFLINE


@pytest.mark.parametrize("registry", [SUITES, ARCHITECTURES], ids=["suites", "architectures"])
def test_every_entry_says_what_it_is_and_its_knobs_validate_their_defaults(registry):
    for entry in registry:
        assert entry.name and entry.summary.endswith((".", ")")), entry.key
        assert entry.validate_params({}) == {knob.name: knob.default for knob in entry.knobs}
        for knob in entry.knobs:
            assert knob.help and knob.label, (entry.key, knob.name)


@pytest.mark.parametrize("key", SUITE_KEYS)
def test_every_suite_is_small_enough_to_test_and_its_tasks_are_complete(key):
    entry = SUITES[key]
    assert "small" in entry.extra, f"{key}: say in extra['small'] how tests build it small"
    assert set(entry.default_tasks) <= set(entry.task_names) and entry.default_tasks
    for task in entry.tasks:
        assert task.kind in {"classification", "regression"} and task.n_outputs >= 1
        assert task.metric and task.help
    data = build_suite(key, entry.extra["small"])
    assert data.x_train.shape[0] <= 20_000, "a small suite builds in well under a second"


@pytest.mark.parametrize("arch", ARCH_KEYS)
def test_every_architecture_has_a_try_it_that_validates(arch):
    prepared = ARCHITECTURES[arch].extra["try_it"]
    config = RunConfig.parse(prepared["config"])
    assert config.arch == arch and prepared["why"]
