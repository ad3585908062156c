"""Bad input, generated: configs by upload and by URL, fuzzed with hypothesis (random keys, types,
huge numbers, unicode, nesting), and every page opened with hostile query strings.

The property is the same everywhere: a person's input gives a message (ConfigError, or a warning on
the page), never a traceback and never code execution. Examples are derandomized, so a failure
in CI is the same failure on a laptop.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from mtl_core.config import ConfigError, RunConfig
from mtl_core.runs import sweep
from mtl_core.runs.share import config_from_upload

ROOT = Path(__file__).resolve().parent.parent
APP = "../app.py"
FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

# Keys a config knows (so that values reach the validators), URL-only keys, and random text.
KNOWN_KEYS = [*RunConfig.model_fields, "suite.correlation", "suite.train_size", "method.alpha",
              "method.c", "method.weights", "arch.width", "arch.experts", *sweep.GRID_KEYS, "run",
              "runs", "present", "__class__", "__reduce__"]
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=12)
json_leaves = (st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80)
               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(keys, inner, max_size=4), max_leaves=20)
# Text that URL values are made of: numbers at and past every bound, names, unicode, control bytes.
url_texts = st.sampled_from(
    ["", "0", "-1", "1e999", "-1e999", "nan", "inf", "9" * 40, "1_000", "0x10", " 3 ", "3.0", "true",
     "None", "ew", "pcgrad", "hps", "mmoe", "synthetic", "multidigits", "y1,y2", "y1,y1", ",,,",
     "é中🙂", "\x00", "\u202e", "<script>alert(1)</script>", "{{7*7}}", "__import__('os')"]
) | st.text(max_size=40)


def stays_a_message(parse, value) -> None:
    """``parse(value)`` returns or raises ConfigError with readable sentences; anything else fails."""
    try:
        parse(value)
    except ConfigError as error:
        assert error.problems and all(isinstance(p, str) and p.strip() for p in error.problems)
        assert not any("Traceback" in p for p in error.problems)


@FUZZ
@given(st.dictionaries(keys, json_values, max_size=8))
def test_any_json_object_is_a_config_or_a_message(data):
    stays_a_message(RunConfig.parse, data)
    stays_a_message(config_from_upload, json.dumps(data).encode())


@FUZZ
@given(json_values)
def test_any_json_document_uploaded_is_a_config_or_a_message(value):
    stays_a_message(config_from_upload, json.dumps(value).encode())


@FUZZ
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_bytes_uploaded_are_a_config_or_a_message(data):
    stays_a_message(config_from_upload, data)


@FUZZ
@given(st.dictionaries(keys, url_texts | st.lists(url_texts, max_size=3), max_size=8))
def test_any_query_string_is_a_config_or_grid_or_a_message(query):
    stays_a_message(RunConfig.from_query, query)
    stays_a_message(sweep.Grid.from_query, query)


def test_a_key_repeated_with_no_value_left_reads_as_absent():
    # Found by the fuzzer: an empty list of values (a Mapping the URL contract allows) raised
    # IndexError in both parsers.
    assert RunConfig.from_query({"suite": [], "steps": ["5", "7"]}).steps == 7
    assert sweep.Grid.from_query({"grid.seeds": [], "suite": "synthetic"}).seeds == (0,)


@pytest.mark.parametrize("field, value", [
    ("steps", 10**30), ("steps", 0), ("steps", -1), ("lr", math.inf), ("lr", -math.inf),
    ("lr", 0.0), ("batch_size", 2**63), ("seed", 2**31), ("eval_every", 0),
    ("probe_every", -5), ("tasks", ["y1"] * 1000), ("suite", "é" * 10_000), ("method", None),
], ids=lambda value: repr(value)[:20])
def test_every_bound_of_the_config_is_a_sentence_that_names_the_setting(field, value):
    data = {"suite": "synthetic", field: value}
    with pytest.raises(ConfigError) as caught:
        RunConfig.parse(data)
    problems = caught.value.problems
    assert any(field in problem for problem in problems), [p[:100] for p in problems]
    # Found by this test: a 10 KB name was echoed whole; a message stays readable.
    assert all(len(problem) <= 300 for problem in problems), [len(p) for p in problems]


def test_the_widest_values_the_config_allows_still_validate():
    config = RunConfig.parse({"suite": "synthetic", "steps": 1_000_000, "batch_size": 8192, "lr": 10,
                              "seed": 2**31 - 1, "eval_every": 1_000_000, "probe_every": 0})
    assert RunConfig.from_query(config.to_query()) == config


# --- no code execution -----------------------------------------------------------------------

DANGEROUS_CALLS = {"pickle", "marshal", "shelve", "dill", "cloudpickle"}


def source_files() -> list[Path]:
    return [*ROOT.joinpath("mtl_core").rglob("*.py"), *ROOT.joinpath("pages").glob("*.py"),
            ROOT / "app.py"]


def test_nothing_unpickles_evaluates_or_loads_checkpoints_unsafely():
    """No pickle (or kin) anywhere in the app and engine; no eval; torch.load only with
    weights_only=True; exec only of the app's own file (pages/_entry.py)."""
    problems = []
    for path in source_files():
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
                if any(name.split(".")[0] in DANGEROUS_CALLS for name in names):
                    problems.append(f"{where}:{node.lineno} imports {names}")
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            if name in {"eval", "yaml.load", "yaml.unsafe_load"}:
                problems.append(f"{where}:{node.lineno} calls {name}")
            if name == "exec" and str(where) != "pages/_entry.py":
                problems.append(f"{where}:{node.lineno} calls exec")
            if name.endswith("torch.load") or name == "load" and "torch" in ast.unparse(node):
                weights_only = [k for k in node.keywords if k.arg == "weights_only"]
                if not weights_only or ast.unparse(weights_only[0].value) != "True":
                    problems.append(f"{where}:{node.lineno} torch.load without weights_only=True")
    assert not problems, problems
    assert len(source_files()) > 20  # the scan saw the code base


# --- the pages, opened by hostile links ---------------------------------------------------------

HOSTILE_QUERIES = [
    {"suite": "nope", "steps": "-1", "lr": "1e999", "run": "999999999999999999999"},
    {"steps": "9" * 40, "batch_size": "0", "tasks": "y1,y1,zz", "method": "__import__('os')"},
    {"suite": "synthetic", "method.alpha": "nan", "arch.width": "-3", "suite.correlation": "2"},
    {"run": "-1", "runs": "1,a,,99999999999999999999,-3", "grid.methods": "ew," * 200,
     "grid.seeds": "1e9,-1,x", "grid.archs": "<script>"},
    {"methods": "\u202e,ew,,," * 50, "steps": "1e999", "starts": "nan, nan; inf, 0; 1, 2, 3; é"},
    {"method": "é中🙂", "arch": "\x00", "present": "maybe", "page": "../../etc/passwd"},
]
PAGES = ["pages/home.py", "pages/train.py", "pages/compare.py", "pages/gradient_lab.py",
         "pages/sharing.py", "pages/affinity.py", "pages/methods.py", "pages/runs.py"]


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_page_opened_by_a_hostile_link_shows_no_traceback(page, mtl_store):
    # The Gradient lab simulates the toy for its default set-up; warm its cache once per page
    # test so each hostile link costs a script run, not 100,000 Adam steps.
    warnings = 0
    for query in HOSTILE_QUERIES:
        at = AppTest.from_file(APP, default_timeout=120).switch_page(page)
        for key, value in query.items():
            at.query_params[key] = value
        at.run()
        assert not at.exception, (page, query, [e.value for e in at.exception])
        warnings += len(at.warning) + len(at.error)
    if page in {"pages/train.py", "pages/compare.py"}:  # the pages that read a config from the URL
        assert warnings >= 4, warnings


# --- every widget's extremes --------------------------------------------------------------------

def extreme_configs() -> list[tuple[str, RunConfig]]:
    """The Train form at its edges: every training setting at its bounds, and every suite's,
    architecture's and method's number knobs all at their lows, then all at their highs."""
    from mtl_core.architectures import ARCHITECTURES
    from mtl_core.methods import METHODS
    from mtl_core.suites import SUITES, required_download

    configs = [("training lows", {"lr": 1e-6, "batch_size": 1, "steps": 1, "eval_every": 1,
                                  "probe_every": 0, "snapshot_every": 0, "seed": 0}),
               ("training highs", {"lr": 10.0, "batch_size": 8192, "steps": 1_000_000,
                                   "eval_every": 1_000_000, "probe_every": 1_000_000,
                                   "snapshot_every": 1_000_000, "affinity_every": 1_000_000,
                                   "seed": 2**31 - 1, "optimizer": "sgd"})]
    for field, registry in (("suite", SUITES), ("arch", ARCHITECTURES), ("method", METHODS)):
        for entry in registry:
            numbers = [k for k in entry.knobs if k.kind in {"float", "int"} and k.low is not None
                       and k.high is not None]
            for end in ("low", "high"):
                params = {k.name: (int if k.kind == "int" else float)(getattr(k, end)) for k in numbers}
                try:
                    entry.validate_params(params)
                except ValueError:  # knobs that constrain each other (a canvas too small for its
                    continue  # digits): refused in one sentence, tests/test_mnist_suite.py
                if field == "suite" and required_download(entry.key, params):
                    continue  # the form offers the download first: tests/test_mnist_suite.py
                if params:
                    base = {"suite": entry.key} if field == "suite" else {"suite": "synthetic", field: entry.key}
                    configs.append((f"{entry.key} {end}s", {**base, f"{field}_params": params}))
    return [(name, RunConfig.parse(data)) for name, data in configs]


@pytest.mark.slow
def test_the_train_form_opens_at_every_extreme_without_a_traceback(mtl_store):
    cases = extreme_configs()
    assert len(cases) > 20  # every registry contributed
    at = AppTest.from_file(APP, default_timeout=60).switch_page("pages/train.py")
    for name, config in cases:
        at.query_params.clear()
        for key, value in config.to_query().items():
            at.query_params[key] = value
        at.run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert not at.error, (name, [e.value for e in at.error])  # a valid config is no problem
        train = next(b for b in at.button if b.label == "Train")
        assert not train.disabled, name  # and the form gives it back unchanged, ready to train
