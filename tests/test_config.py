"""RunConfig: validation a person understands, and exact JSON / URL round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtl_core.config import ConfigError, RunConfig
from mtl_core.suites import SUITES


def problems_of(data) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        RunConfig.parse(data)
    return caught.value.problems


def test_defaults_are_the_demo_and_fill_in_suite_defaults():
    config = RunConfig()
    assert (config.suite, config.tasks, config.arch, config.method) == ("multidigits", ("left", "right"), "hps", "ew")
    assert config.suite_params == {knob.name: knob.default for knob in SUITES["multidigits"].knobs}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"lr": -1}, "lr: must be greater than 0 (got -1)"),
        ({"lr": 0}, "lr: must be greater than 0 (got 0)"),
        ({"steps": 0}, "steps: must be greater than or equal to 1 (got 0)"),
        ({"steps": "many"}, "steps: must be a whole number, not text (got 'many')"),
        ({"batch_size": 10**9}, "batch_size: must be less than or equal to 8192"),
        ({"optimizer": "rmsprop"}, "optimizer: must be 'adam' or 'sgd'"),
        ({"device": "tpu"}, "device: must be 'auto', 'cpu', 'cuda' or 'mps'"),
        ({"suite": "imagenet"}, "unknown suite 'imagenet' (choose from multidigits, digit_attributes, synthetic, multimnist, multifashion, penguins, wine)"),
        ({"arch": "nope"}, "unknown architecture 'nope'"),
        ({"method": "nope"}, "unknown method 'nope'"),
        ({"tasks": ["left", "ink"]}, "tasks: ink not in MultiDigits"),
        ({"tasks": ["left", "left"]}, "tasks: each task may be chosen once"),
        ({"learning_rate": 0.1}, "learning_rate: is not a setting"),
        ({"suite_params": {"overlap": 9}}, "suite_params: overlap must be between 0 and 7 (got 9)"),
        ({"suite_params": {"colour": 1}}, "has no setting 'colour'"),
        ({"suite_params": {"overlap": 2.5}}, "overlap must be a whole number"),
        ({"suite": "synthetic", "suite_params": {"correlation": "nan"}}, "correlation must be a finite number"),
    ],
)
def test_bad_values_are_rejected_with_a_readable_sentence(data, expected):
    problems = problems_of(data)
    assert any(expected in problem for problem in problems), problems
    assert all("Traceback" not in problem and "pydantic" not in problem for problem in problems)


def test_several_field_problems_are_reported_together():
    problems = problems_of({"lr": -1, "steps": 0, "seed": -3})
    assert len(problems) == 3


def test_tasks_are_normalised_to_the_suite_order_and_accept_a_comma_list():
    config = RunConfig.parse({"suite": "digit_attributes", "tasks": "ink, digit"})
    assert config.tasks == ("digit", "ink")


def test_config_is_frozen():
    with pytest.raises(Exception, match="frozen"):
        RunConfig().lr = 1.0


def test_non_objects_and_broken_json_give_messages():
    assert "must be a JSON object" in problems_of([1, 2])[0]
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_json("{nope")
    with pytest.raises(ConfigError, match="larger than"):
        RunConfig.from_json(" " * (65 * 1024))


def test_json_and_query_round_trip_exactly():
    config = RunConfig.parse({"suite": "synthetic", "suite_params": {"correlation": 0.1 + 0.2},
                              "lr": 3e-4, "seed": 7, "optimizer": "sgd", "probe_every": 0})
    assert RunConfig.from_json(config.to_json()) == config
    query = config.to_query()
    assert all(isinstance(value, str) for value in query.values())
    assert query["suite.correlation"] == "0.30000000000000004"
    assert RunConfig.from_query(query) == config


def test_query_ignores_keys_that_are_not_config_and_takes_the_last_repeated_value():
    query = {**RunConfig().to_query(), "run": "12", "page": "train", "lr": ["0.1", "0.01"]}
    assert RunConfig.from_query(query).lr == 0.01


def test_query_with_bad_values_gives_messages():
    with pytest.raises(ConfigError, match="overlap must be a number"):
        RunConfig.from_query({"suite.overlap": "lots"})


@settings(max_examples=60, deadline=None)
@given(
    suite=st.sampled_from(SUITES.keys()),
    lr=st.floats(min_value=1e-6, max_value=10, allow_nan=False),
    steps=st.integers(1, 10**6),
    seed=st.integers(0, 2**31 - 1),
    probe=st.integers(0, 1000),
)
def test_round_trip_holds_for_any_valid_config(suite, lr, steps, seed, probe):
    config = RunConfig(suite=suite, lr=lr, steps=steps, seed=seed, probe_every=probe)
    assert RunConfig.from_query(config.to_query()) == config
    assert RunConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["tasks"] == list(config.tasks)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                                                       st.text(max_size=20), st.lists(st.integers(), max_size=3))))
def test_any_garbage_gives_a_config_error_never_another_exception(data):
    try:
        RunConfig.parse(data)
    except ConfigError as error:
        assert error.problems and all(isinstance(p, str) and p for p in error.problems)


@pytest.mark.parametrize(("data", "expected"), [
    ({"steps": True}, "steps: must be a whole number, not true or false"),
    ({"seed": False}, "seed: must be a whole number, not true or false"),
    ({"lr": True}, "lr: must be a number, not true or false"),
    ({"steps": 3.0}, "steps: must be a whole number, written without a decimal point"),
    ({"batch_size": 64.5}, "batch_size: must be a whole number"),
    ({"affinity_every": 1e3}, "affinity_every: must be a whole number"),
    ({"steps": "400"}, "steps: must be a whole number, not text"),
    ({"lr": "0.1"}, "lr: must be a number, not text"),
])
def test_numbers_in_json_must_be_numbers_of_the_right_kind(data, expected):
    # pydantic's lax mode read {"steps": true} as 1 step and {"steps": 3.0} as 3
    assert any(expected in problem for problem in problems_of(data)), problems_of(data)
    with pytest.raises(ConfigError):
        RunConfig.from_json(json.dumps(data))


def test_a_url_spells_numbers_as_text_and_still_parses():
    config = RunConfig.from_query({"steps": "400", "lr": "0.1", "seed": "3", "affinity_every": "5"})
    assert (config.steps, config.lr, config.seed, config.affinity_every) == (400, 0.1, 3, 5)
    assert "steps: must be a valid integer" in "; ".join(_query_problems({"steps": "3.5"}))
    assert any("steps" in problem for problem in _query_problems({"steps": "true"}))


def _query_problems(query) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_query(query)
    return caught.value.problems


def test_a_float_that_is_a_whole_number_is_still_a_float_for_lr():
    assert RunConfig.parse({"lr": 1}).lr == 1.0 and isinstance(RunConfig.parse({"lr": 1}).lr, float)


def test_deep_nesting_is_a_config_error_not_a_recursion_error():
    with pytest.raises(ConfigError, match="nests more than"):
        RunConfig.from_json("[" * 30_000 + "]" * 30_000)
