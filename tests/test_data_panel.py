"""See the data: every registered suite gives its first validation examples with their targets and
its class balance; the figure labels every example with every selected task; the Methods page
shows a data panel on each suite's card, built only once opened."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mtl_core.figures import data as data_viz
from mtl_core.suites import SUITES, build_suite
from mtl_core.suites import examples as suite_examples
from tests.suite_support import OFFLINE

KEYS = OFFLINE


@functools.cache
def small_suite(key: str):
    return build_suite(key, SUITES[key].extra["small"])


@pytest.mark.parametrize("key", KEYS)
def test_the_examples_are_the_first_validation_examples_with_their_targets(key):
    data = small_suite(key)
    examples = suite_examples.data_examples(data, n=6)
    assert examples.tasks == data.info.task_names
    assert len(examples.inputs) == 6 and list(examples.targets.index) == list(range(6))
    if data.info.input_kind == "image":
        assert examples.inputs.shape == (6, *data.input_shape[-2:])
        assert examples.inputs.min() >= 0.0 and examples.inputs.max() <= 1.0
    else:
        assert examples.inputs.shape == (6, *data.input_shape)
    assert np.array_equal(examples.inputs.reshape(6, -1), data.x_val[:6].reshape(6, -1).numpy())
    for task in data.info.task_names:
        assert np.array_equal(examples.targets[task].to_numpy(), data.y_val[task][:6].numpy())
    # deterministic: the same examples every time
    again = suite_examples.data_examples(small_suite(key), n=6)
    assert np.array_equal(again.inputs, examples.inputs) and again.targets.equals(examples.targets)


@pytest.mark.parametrize("key", KEYS)
def test_every_example_gets_a_label_line_per_selected_task(key):
    data = small_suite(key)
    tasks = data.info.default_tasks
    examples = suite_examples.data_examples(data, tasks, n=5)
    labels = suite_examples.example_labels(examples)
    assert len(labels) == 5 * len(tasks)
    for row in labels.itertuples():
        target = data.y_val[row.task][row.example].item()
        assert row.value == pytest.approx(target)
        assert row.text == f"{row.task} {suite_examples.format_target(data.info.task(row.task), target)}"
    if data.info.input_kind == "image":
        pixels = suite_examples.pixel_frame(examples)
        assert len(pixels) == examples.inputs.size and set(pixels["example"]) == set(range(5))
    else:
        table = suite_examples.feature_table(examples)
        names = data.feature_names or [f"x[{i}]" for i in range(data.input_shape[0])]  # a table names its columns
        assert list(table.columns) == list(names[:suite_examples.N_FEATURES]) + list(tasks)
        assert len(table) == 5


@pytest.mark.parametrize("key", KEYS)
def test_the_class_balance_counts_every_class_of_every_classification_task(key):
    data = small_suite(key)
    balance = suite_examples.class_balance(data)
    classification = [t for t in data.info.tasks if t.kind == "classification"]
    assert sorted(set(balance["task"])) == sorted(t.name for t in classification)
    for task in classification:
        rows = balance[balance["task"] == task.name]
        assert list(rows["class"]) == list(range(task.n_outputs))
        assert rows["count"].sum() == len(data.y_train[task.name])
        assert rows["share"].sum() == pytest.approx(1.0)


def test_the_association_is_zero_for_independent_targets_and_one_for_determined_ones():
    data = small_suite("digit_attributes")
    table = suite_examples.label_association(data)
    value = {(r.task_a, r.task_b): r.value for r in table.itertuples()}
    assert all(value[(t, t)] == 1.0 for t in data.info.task_names)
    assert all(value[(a, b)] == pytest.approx(value[(b, a)]) for a, b in value)  # symmetric
    assert value[("digit", "parity")] == pytest.approx(1.0)  # the class decides the parity
    assert value[("digit", "large")] == pytest.approx(1.0)
    assert table["value"].min() >= 0.0 and table["value"].max() <= 1.0 + 1e-12
    # the measure follows the kinds
    measures = {(r.task_a, r.task_b): r.measure for r in table.itertuples()}
    assert measures[("ink", "centre")] == "|Pearson r|" and measures[("digit", "ink")] == "correlation ratio η"
    # MultiDigits' two digits are drawn independently: little association, far below any real link
    pairs = suite_examples.label_association(small_suite("multidigits"))
    assert pairs.query("task_a == 'left' and task_b == 'right'")["value"].item() < 0.2


def test_the_association_measures_match_their_textbook_values():
    from mtl_core.suites.examples import _correlation_ratio, _cramers_v, _pearson

    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert _pearson(x, -2 * x) == pytest.approx(-1.0)
    # a 2x2 table [[2, 0], [0, 2]] is perfect association; [[1, 1], [1, 1]] none
    assert _cramers_v(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])) == pytest.approx(1.0)
    assert _cramers_v(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])) == pytest.approx(0.0)
    # groups {0: [1, 3], 1: [5, 7]}: between-group SS 16 of total 20 -> eta = sqrt(0.8)
    assert _correlation_ratio(np.array([0, 0, 1, 1]), np.array([1.0, 3.0, 5.0, 7.0])) == pytest.approx(0.8 ** 0.5)


def test_the_association_heatmap_writes_every_value_on_a_fixed_scale():
    data = small_suite("digit_attributes")
    table = suite_examples.label_association(data, ["digit", "ink", "centre"])
    spec = data_viz.association_heatmap(table, data.info).to_dict()
    cells, text = spec["layer"]
    assert cells["encoding"]["color"]["scale"]["domain"] == [0, 1]
    assert text["encoding"]["text"]["field"] == "value"
    assert len(table) == 9 and set(table["task_a"]) == {"digit", "ink", "centre"}


def test_targets_read_as_a_person_writes_them():
    info = SUITES["digit_attributes"]
    assert suite_examples.format_target(info.task("digit"), 3) == "3"
    assert [suite_examples.format_target(info.task("slant"), v) for v in (-0.0137, 0.00181, 3.5204)] == [
        "-0.01", "0.00", "3.52"]
    assert [suite_examples.format_target(info.task("ink"), v) for v in (21.375, 16.0)] == ["21.4", "16.0"]


def test_tasks_are_checked_and_kept_in_the_suite_order():
    data = small_suite("digit_attributes")
    assert suite_examples.data_examples(data, ["ink", "digit"]).tasks == ("digit", "ink")
    with pytest.raises(ValueError, match="no task 'colour'"):
        suite_examples.data_examples(data, ["digit", "colour"])


@pytest.mark.parametrize("key", [key for key in OFFLINE if SUITES[key].input_kind == "image"])
def test_the_grid_writes_every_task_label_under_every_example(key):
    data = small_suite(key)
    examples = suite_examples.data_examples(data, n=8)
    labels = suite_examples.example_labels(examples)
    spec = data_viz.examples_grid(suite_examples.pixel_frame(examples), labels).to_dict()  # validated
    panels = spec["concat"]
    assert len(panels) == 8 and spec["columns"] == 4
    for example, panel in enumerate(panels):
        title = panel["title"]
        assert title["orient"] == "bottom" and title["fontSize"] >= 16  # readable on a projector
        expected = [f"{task} {suite_examples.format_target(data.info.task(task), examples.targets.at[example, task])}"
                    for task in examples.tasks]
        assert title["text"] == expected
        assert panel["width"] >= 8 * 12 and panel["encoding"]["color"]["scale"]["domain"] == [0, 1]


def test_the_balance_chart_has_one_titled_panel_per_classification_task():
    data = small_suite("digit_attributes")
    balance = suite_examples.class_balance(data, data.info.default_tasks)
    spec = data_viz.class_balance_chart(balance, data.info).to_dict()
    titles = [panel["title"]["text"] for panel in spec["concat"]]
    assert titles == ["Digit class (digit)", "Parity (parity)"] and spec["columns"] == 2


# --- the page ------------------------------------------------------------------------------------

def methods_page(open_key: str | None = None) -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.switch_page("pages/methods.py")
    if open_key:
        at.session_state[open_key] = True  # the expander's state: opened
    at.run()
    assert not at.exception
    return at


def test_the_methods_page_has_a_data_panel_per_suite_built_only_once_opened():
    at = methods_page()
    panels = [e for e in at.expander if e.label == "See the data"]
    assert len(panels) == len(SUITES)
    assert all(not panel.get("vega_lite_chart") for panel in panels)  # closed: nothing built
    assert any(h.value == f"Task suites ({len(SUITES)})" for h in at.header)


def test_an_opened_data_panel_shows_the_labelled_examples_and_the_class_balance():
    at = methods_page("methods.data.multidigits")
    panel = next(e for e in at.expander if e.label == "See the data" and e.get("vega_lite_chart"))
    charts = panel.get("vega_lite_chart")
    assert len(charts) == 3  # the examples, the class balance and the tasks' association
    association = json.loads(charts[2].proto.spec)
    assert association["title"]["text"] == "How strongly the tasks' targets go together"
    grid = json.loads(charts[0].proto.spec)
    assert [p["title"]["text"][0].split()[0] for p in grid["concat"]] == ["left"] * 8
    assert any("validation examples" in c.value for c in panel.caption)


def test_an_opened_vector_suite_panel_shows_a_table_with_the_targets():
    at = methods_page("methods.data.synthetic")
    panel = next(e for e in at.expander if e.label == "See the data" and e.get("dataframe"))
    table = panel.get("dataframe")[0].value
    assert list(table.columns)[-2:] == ["y1", "y2"] and len(table) == suite_examples.N_EXAMPLES
    assert any("class balance" in c.value for c in panel.caption)  # no classification task


def test_a_table_suites_panel_names_its_columns_and_says_they_are_standardised():
    at = methods_page("methods.data.penguins")
    panel = next(e for e in at.expander if e.label == "See the data" and e.get("dataframe"))
    table = panel.get("dataframe")[0].value
    assert list(table.columns)[:3] == ["island=Biscoe", "island=Dream", "island=Torgersen"]
    assert list(table.columns)[-4:] == ["species", "sex", "body_mass", "flipper_length"]
    assert any("standardised" in c.value for c in panel.caption)
