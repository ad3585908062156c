"""The same rules on every page of app.py's navigation, checked in AppTest: every chart's axes have
titles (with a unit where the quantity has one), every control has help text, and every chart can
be exported. Pages are visited with a trained run in the store, so the dashboards draw their charts.

Axis titles are read from the *compiled* Vega (vl-convert compiles the spec exactly as the browser
does), so a layered chart's merged title is what is checked, not each layer's encoding.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mtl_core.config import RunConfig
from mtl_core.runs.store import Store
from mtl_core.runs.worker import execute_run

APP = "../app.py"  # AppTest paths are relative to this file
APP_FILE = Path(__file__).resolve().parents[1] / "app.py"
NAVIGATION = re.findall(r'st\.Page\("([^"]+)"', APP_FILE.read_text())

# A run that records everything the dashboards draw: losses, metrics, weights, gradient probes
# (cosines, norms, cos(update, g)) and MMoE's gate snapshots.
RUN = {"suite": "synthetic", "suite_params": {"train_size": 1000}, "arch": "mmoe", "method": "uw",
       "steps": 30, "eval_every": 10, "probe_every": 5, "snapshot_every": 10, "batch_size": 64,
       "device": "cpu"}
# Titles that are a column's name rather than words for a person.
RAW_NAMES = {"value", "step", "x", "y", "row", "column", "x2", "y2", "cosine", "datum"}
# A quantity with a unit: its title must name the unit in parentheses or as "per" / "/s".
NEEDS_UNIT = re.compile(r"\b(time|duration|seconds|speed|memory|latency)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One store with one real finished run for the whole module; yields (store path, run id)."""
    path = tmp_path_factory.mktemp("consistency") / "mtl.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MTL_STORE", str(path))
        st.cache_resource.clear()
        store = Store(path)
        config = RunConfig.parse(RUN)
        run_id = store.create_run(config, name="consistency run", owner=OWNER)
        assert execute_run(store, run_id, stop=threading.Event()).status == "done"
        yield path, run_id
        st.cache_resource.clear()


OWNER = "tester"  # the identity of every visit: the run is its own, so Runs offers Delete


def visit(page: str, query: dict[str, str] | None = None, action=None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["identity.owner"] = OWNER  # as a cookie would have said (pages/_identity.py)
    at.switch_page(page)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    if action is not None:
        action(at)
    assert not at.exception, f"{page}: {at.exception}"
    return at


# (name, page, query, action) for every page in the navigation, and the states in which the pages
# draw more: a run's dashboard ("{run}" is the trained run's id), a run's learned sharing, a
# delete being confirmed.
STATES = [(page, page, None, None) for page in NAVIGATION] + [
    ("train with a run", "pages/train.py", RunConfig.parse(RUN).to_query() | {"run": "{run}"}, None),
    ("sharing, what a run learned", "pages/sharing.py", None,
     lambda at: at.radio(key="sharing.view").set_value("What a run learned").run()),
    ("runs, confirming a delete", "pages/runs.py", None,
     lambda at: next(b for b in at.button if b.key == "runs.delete").click().run()),
]
# States that must draw charts: the check would pass vacuously on a page that drew none.
CHARTS_AT_LEAST = {"train with a run": 8, "sharing, what a run learned": 1, "pages/sharing.py": 1,
                   "pages/home.py": 1}


def walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from walk(child)


def widgets(at: AppTest) -> list[tuple[str, str, str]]:
    """(kind, label, help) of every widget on the page (anything with a widget id)."""
    found = []
    for node in walk(at._tree):
        proto = getattr(node, "proto", None)
        fields = proto.DESCRIPTOR.fields_by_name if proto is not None else {}
        if "id" in fields and proto.id and "help" in fields:
            found.append((type(node).__name__, getattr(proto, "label", ""), proto.help))
    return found


def axes(vega: object, inside_title: str = "") -> list[tuple[dict, str]]:
    """Every axis of a compiled Vega spec (nested groups too), with the title of its chart."""
    found = []
    if isinstance(vega, dict):
        title = vega.get("title")
        title = title.get("text", "") if isinstance(title, dict) else title or inside_title
        found += [(axis, str(title)) for axis in vega.get("axes", [])]
        for value in vega.values():
            if isinstance(value, list | dict):
                found += axes(value, str(title))
    elif isinstance(vega, list):
        for value in vega:
            found += axes(value, inside_title)
    return found


def vega_problems(spec: dict, scales: dict[str, str]) -> list[str]:
    import vl_convert as vlc

    compiled = vlc.vegalite_to_vega(spec)
    scales.update({scale["name"]: scale.get("type", "linear") for scale in _scales(compiled)})
    problems = []
    for axis, chart_title in axes(compiled):
        if axis.get("grid") and axis.get("labels") is False:
            continue  # vega-lite's separate grid-line axis: never titled
        title = axis.get("title")
        title = " ".join(title) if isinstance(title, list) else title
        categorical = scales.get(axis.get("scale"), "linear") in {"band", "point"}
        if not title and categorical and chart_title:
            continue  # category labels (tasks, experts) under a chart title that names them
        if not title or str(title).strip().lower() in RAW_NAMES:
            problems.append(f"chart '{chart_title}': {axis.get('orient')} axis titled {title!r}")
        elif NEEDS_UNIT.search(str(title)) and not re.search(r"\(.+\)|/s\b|\bper\b", str(title)):
            problems.append(f"chart '{chart_title}': axis '{title}' has no unit")
    return problems


def _scales(vega: object) -> list[dict]:
    if isinstance(vega, dict):
        return [*vega.get("scales", []), *(s for v in vega.values() for s in _scales(v))]
    if isinstance(vega, list):
        return [s for v in vega for s in _scales(v)]
    return []


def plotly_problems(figure: dict) -> list[str]:
    """Cartesian traces need titled x and y axes; treemaps, pies and the like have no axes."""
    cartesian = {"scatter", "scattergl", "bar", "heatmap", "histogram", "box", "violin", "contour",
                 "histogram2d", "histogram2dcontour", "line"}
    layout = figure.get("layout", {})
    problems = []
    for trace in figure.get("data", []):
        if trace.get("type", "scatter") not in cartesian:
            continue
        for letter in ("x", "y"):
            axis = layout.get(f"{letter}axis{trace.get(f'{letter}axis', letter)[1:]}", {})
            title = axis.get("title", {})
            text = title.get("text") if isinstance(title, dict) else title
            if not text and axis.get("visible", True):
                name = layout.get("title", {}).get("text", "") if isinstance(layout.get("title"), dict) else ""
                problems.append(f"plotly figure '{name}': {letter} axis has no title")
    return sorted(set(problems))


def page_problems(at: AppTest) -> tuple[list[str], int, int]:
    """Problems on one page, and how many charts and widgets were checked."""
    problems = [f"{kind} '{label}' has no help text" for kind, label, help in widgets(at) if not help.strip()]
    specs = [json.loads(element.proto.spec) for element in at.get("arrow_vega_lite_chart")]
    specs += [json.loads(element.proto.spec) for element in at.get("vega_lite_chart")]
    scales: dict[str, str] = {}
    for spec in specs:
        problems += vega_problems(spec, scales)
    figures = [json.loads(element.proto.spec) for element in at.get("plotly_chart")]
    for figure in figures:
        problems += plotly_problems(figure)
    # every altair chart offers its PNG and SVG (pages/_charts.py draw)
    downloads = [node.proto.label for node in walk(at._tree) if getattr(node, "type", "") == "download_button"]
    if len(specs) and downloads.count("PNG") < len(specs):
        problems.append(f"{len(specs)} charts but {downloads.count('PNG')} PNG export buttons")
    return problems, len(specs) + len(figures), len(widgets(at))


def test_the_navigation_lists_every_page_file():
    pages = {path.as_posix() for path in (APP_FILE.parent / "pages").glob("[!_]*.py")}
    assert {str(APP_FILE.parent / page) for page in NAVIGATION} == pages


@pytest.mark.parametrize("name, page, query, action", STATES, ids=[state[0] for state in STATES])
def test_every_page_titles_its_axes_and_helps_its_controls(trained_run, name, page, query, action):
    _, run_id = trained_run
    query = {key: value.replace("{run}", str(run_id)) for key, value in (query or {}).items()}
    at = visit(page, query, action)
    problems, charts, _ = page_problems(at)
    assert charts >= CHARTS_AT_LEAST.get(name, 0), f"{name}: only {charts} charts drawn"
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


def test_the_axis_check_catches_what_it_should():
    import altair as alt
    import pandas as pd

    data = pd.DataFrame({"step": [0, 1], "value": [1.0, 2.0], "task": ["a", "b"]})
    good = alt.Chart(data).mark_line().encode(x=alt.X("step:Q", title="Training step"),
                                              y=alt.Y("value:Q", title="Loss")).properties(title="Loss")
    assert vega_problems(good.to_dict(), {}) == []
    untitled = alt.Chart(data).mark_line().encode(x=alt.X("step:Q", title=None), y="value:Q")
    problems = vega_problems(untitled.to_dict(), {})
    assert any("bottom axis titled None" in p for p in problems)
    assert any("left axis titled 'value'" in p for p in problems)
    unitless = alt.Chart(data).mark_line().encode(x=alt.X("step:Q", title="Training step"),
                                                  y=alt.Y("value:Q", title="Wall time"))
    assert any("has no unit" in p for p in vega_problems(unitless.to_dict(), {}))
    figure = {"data": [{"type": "scatter"}], "layout": {"xaxis": {"title": {"text": "x (m)"}}}}
    assert plotly_problems(figure) == ["plotly figure '': y axis has no title"]


# --- one colour per method -------------------------------------------------------------------------

def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two "#rrggbb" colours."""
    def luminance(colour: str) -> float:
        channels = [int(colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    high, low = sorted([luminance(first), luminance(second)], reverse=True)
    return (high + 0.05) / (low + 0.05)


STREAMLIT_DARK = "#0e1117"  # the dark theme's page background


def test_every_method_has_its_own_colour_and_dash_readable_on_white_and_dark():
    from mtl_core.figures import run as viz
    from mtl_core.methods import METHODS

    colors, dashes = viz.method_colors(), viz.method_dashes()
    assert list(colors) == list(dashes) and set(colors) == set(METHODS.keys())
    styles = [(colors[key], tuple(dashes[key])) for key in colors]
    assert len(set(styles)) == len(styles)  # colour and dash together tell every method apart
    assert colors["ew"] == viz.BASELINE_GREY
    for key, color in colors.items():
        assert contrast(color, "#ffffff") >= 2.8 and contrast(color, STREAMLIT_DARK) >= 2.8, (key, color)
        assert color not in viz.OKABE_ITO  # a method never reads as a task
    # the first methods (and the baseline) are solid; hues repeat only with another dash
    solid = [key for key in colors if dashes[key] == viz.METHOD_DASHES[0]]
    assert len({colors[key] for key in solid}) == len(solid) >= 8


def test_method_scales_pin_each_method_to_its_colour_and_dash():
    from mtl_core.figures import run as viz

    color, dash = viz.method_scales(["pcgrad", "ew", "famo"])
    assert color.to_dict()["domain"] == ["pcgrad", "ew", "famo"]
    assert color.to_dict()["range"] == [viz.method_colors()[m] for m in ("pcgrad", "ew", "famo")]
    assert dash.to_dict()["range"] == [viz.method_dashes()[m] for m in ("pcgrad", "ew", "famo")]
