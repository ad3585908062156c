"""Figures of the Compare page: curves with mean +/- std bands over seeds, the Pareto plot of two
tasks with the non-dominated runs marked and the hypervolume, parallel coordinates for more tasks,
and the results table as a person reads it. Pure functions (no streamlit); the page places them.

Methods keep their colour and dash from ``viz.method_colors``/``viz.method_dashes`` on every chart;
architectures, when a grid has several, get a column each (a third channel on one line would be
unreadable on a projector).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mtl_core.engine.metrics import hypervolume, non_dominated, pm, reference_point
from mtl_core.figures import run as viz
from mtl_core.methods import METHODS
from mtl_core.registry import SuiteInfo

FONT_SIZE = 15  # projector-readable
BASELINE_LABEL = "STL baselines (one network per task)"
BASELINE_SERIES = "stl"  # the baselines' key among the methods of a chart
BASELINE_ARCH = "stl"
BASELINE_COLOR = "#000000"  # no method's colour: the yardstick every method is measured against


def method_label(method: str) -> str:
    if method == BASELINE_SERIES:
        return BASELINE_LABEL
    return METHODS[method].name if method in METHODS else method


# --- curves ----------------------------------------------------------------------------------------

def seed_bands(curves: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of each (method, arch, task, step).

    ``curves``: run_id, step, task, value (one metric per task); ``runs``: run_id, method, arch.
    Returns method, arch, task, step, mean, std (0 for one seed), low, high, seeds.
    """
    columns = ["method", "arch", "task", "step", "mean", "std", "low", "high", "seeds"]
    if curves.empty:
        return pd.DataFrame(columns=columns)
    data = curves.merge(runs[["run_id", "method", "arch"]], on="run_id")
    data = data[np.isfinite(pd.to_numeric(data["value"], errors="coerce"))]
    grouped = data.groupby(["method", "arch", "task", "step"], sort=False)["value"]
    bands = grouped.agg(mean="mean", std="std", seeds="count").reset_index()
    bands["std"] = bands["std"].fillna(0.0)
    bands["low"] = bands["mean"] - bands["std"]
    bands["high"] = bands["mean"] + bands["std"]
    return bands[columns].sort_values(["method", "arch", "task", "step"], kind="stable").reset_index(drop=True)


def band_chart(bands: pd.DataFrame, *, task: str, y_title: str, x_max: int | None = None,
               y_domain: tuple[float, float] | None = None, height: int = 440) -> alt.Chart | alt.FacetChart:
    """One task's validation metric per method: the mean over seeds as a line, mean +/- one std
    as a shaded band; the STL baselines as a black line. With several architectures, one chart
    per architecture, stacked, each with the baselines for reference. ``height`` is the whole
    chart's, legend below included (Streamlit fits the spec into it)."""
    data = bands[bands["task"] == task].copy()
    data["series"] = np.where(data["arch"] == BASELINE_ARCH, BASELINE_SERIES, data["method"])
    series = [*dict.fromkeys(m for m in data["series"] if m != BASELINE_SERIES)]
    series += [BASELINE_SERIES] if (data["series"] == BASELINE_SERIES).any() else []
    colour, dash = _series_scales(series)
    legend = alt.Legend(title="Method", labelExpr=_label_expr(series), labelFontSize=FONT_SIZE - 2,
                        titleFontSize=FONT_SIZE - 2, labelLimit=320, orient="bottom", columns=2,
                        symbolType="stroke", symbolOpacity=1, symbolStrokeWidth=3, symbolSize=400)
    scale = alt.Scale(domain=list(y_domain), nice=False) if y_domain else alt.Scale(zero=False)
    x = alt.X("step:Q", title=viz.STEP_TITLE,
              scale=alt.Scale(domain=[0, x_max], nice=False) if x_max else alt.Scale(domainMin=0))
    archs = [a for a in dict.fromkeys(data["arch"]) if a != BASELINE_ARCH]
    if len(archs) > 1:  # the baselines appear in every architecture's chart
        baseline = data[data["arch"] == BASELINE_ARCH]
        data = pd.concat([data[data["arch"] != BASELINE_ARCH],
                          *[baseline.assign(arch=arch) for arch in archs]], ignore_index=True)
    base = alt.Chart(data)
    band = base.mark_area(opacity=0.16).encode(
        x=x, y=alt.Y("low:Q", title=y_title, scale=scale), y2="high:Q",
        fill=alt.Fill("series:N", scale=colour, legend=legend))
    line = base.mark_line(strokeWidth=2.5).encode(
        x=x, y=alt.Y("mean:Q", title=y_title, scale=scale),
        color=alt.Color("series:N", scale=colour, legend=legend),
        # The same legend object on fill, colour and dash: vega-lite merges the channels of one
        # field into one legend (showing all three) and drops it when any says legend=None.
        strokeDash=alt.StrokeDash("series:N", scale=dash, legend=legend),
        tooltip=[alt.Tooltip("series:N", title="Method"), alt.Tooltip("arch:N", title="Architecture"),
                 alt.Tooltip("step:Q", title="Step"), alt.Tooltip("mean:Q", title="Mean", format=".4f"),
                 alt.Tooltip("std:Q", title="Std over seeds", format=".4f"),
                 alt.Tooltip("seeds:Q", title="Seeds")])
    layered = alt.layer(band, line).properties(height=height)
    if len(archs) > 1:
        layered = layered.facet(row=alt.Row("arch:N", title="Architecture",
                                            header=alt.Header(labelFontSize=FONT_SIZE)))
    return layered.properties(title=f"{task}: validation {y_title.split(': ', 1)[-1].lower()}").configure_axis(
        labelFontSize=FONT_SIZE - 2, titleFontSize=FONT_SIZE - 1).configure_title(fontSize=FONT_SIZE + 1)


def _series_scales(series: Sequence[str]) -> tuple[alt.Scale, alt.Scale]:
    """Each method's colour and dash (``viz.method_scales``), the STL baselines in black, solid."""
    methods = [m for m in series if m != BASELINE_SERIES]
    colour, dash = viz.method_scales(methods)
    colours = [*colour.range, *([BASELINE_COLOR] if BASELINE_SERIES in series else [])]
    dashes = [*dash.range, *([[1, 0]] if BASELINE_SERIES in series else [])]
    return alt.Scale(domain=list(series), range=colours), alt.Scale(domain=list(series), range=dashes)


def _label_expr(methods: Sequence[str]) -> str:
    """A vega expression that shows each method key's display name in the legend."""
    cases = " : ".join(f"datum.label === {_js(m)} ? {_js(method_label(m))}" for m in methods)
    return f"{cases} : datum.label" if cases else "datum.label"


def _js(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- Pareto front -----------------------------------------------------------------------------------

def pareto_points(summaries: pd.DataFrame, tasks: Sequence[str], higher_is_better: Sequence[bool],
                  reference: Sequence[float] | None = None) -> tuple[pd.DataFrame, np.ndarray, float]:
    """The finished runs' final metrics on ``tasks`` with a ``front`` column (non-dominated among
    them); the reference point (given, else :func:`mtl_core.engine.metrics.reference_point`) and the
    hypervolume of the runs against it."""
    points = summaries[summaries["status"] == "done"].copy()
    values = points[list(tasks)].to_numpy(dtype=float)
    finite = np.isfinite(values).all(axis=1)
    points, values = points[finite], values[finite]
    if len(points) == 0:
        return points.assign(front=pd.Series(dtype=bool)), np.full(len(tasks), math.nan), math.nan
    points["front"] = non_dominated(values, higher_is_better)
    ref = np.asarray(reference, dtype=float) if reference is not None else reference_point(values, higher_is_better)
    return points, ref, hypervolume(values, ref, higher_is_better)


def pareto_figure(points: pd.DataFrame, reference: np.ndarray, volume: float, *,
                  x_task: str, y_task: str, x_title: str, y_title: str,
                  higher_is_better: tuple[bool, bool]) -> go.Figure:
    """Task A against task B, one marker per run in its method's colour (circle: hps, other
    shapes: other architectures); the non-dominated runs ringed in black and joined by the front's
    staircase; the reference point of the hypervolume as a grey cross."""
    colors = viz.method_colors()
    symbols = ["circle", "diamond", "triangle-up", "cross", "star", "hexagon", "pentagon"]  # square: STL
    archs = [a for a in dict.fromkeys(points["arch"]) if a != BASELINE_ARCH]
    figure = go.Figure()
    front = points[points["front"]].sort_values(x_task, ascending=higher_is_better[0])  # worst x first
    if len(front):
        xs, ys = _staircase(front[x_task].tolist(), front[y_task].tolist())
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="Pareto front",
                                    line={"color": "#000000", "width": 1.5, "dash": "dot"},
                                    hoverinfo="skip"))
    for (method, arch), group in points.groupby(["method", "arch"], sort=False):
        baseline = arch == BASELINE_ARCH
        name = BASELINE_LABEL if baseline else method_label(method)
        figure.add_trace(go.Scatter(
            x=group[x_task], y=group[y_task], mode="markers",
            name=f"{name} · {arch}" if len(archs) > 1 and not baseline else name,
            marker={"color": BASELINE_COLOR if baseline else colors.get(method, viz.BASELINE_GREY), "size": 14,
                    "symbol": "square" if baseline else symbols[archs.index(arch) % len(symbols)],
                    "line": {"color": ["#000000" if f else "#ffffff" for f in group["front"]],
                             "width": [3 if f else 1 for f in group["front"]]}},
            customdata=np.stack([group["run_id"], group["seed"],
                                 np.where(group["front"], "yes", "no")], axis=1),
            hovertemplate=(f"run %{{customdata[0]}} (seed %{{customdata[1]}})<br>{x_title}: %{{x:.4f}}<br>"
                           f"{y_title}: %{{y:.4f}}<br>non-dominated: %{{customdata[2]}}<extra></extra>")))
    if np.isfinite(reference).all():
        figure.add_trace(go.Scatter(x=[reference[0]], y=[reference[1]], mode="markers",
                                    name="reference point", marker={"symbol": "x", "size": 12, "color": "#777777"},
                                    hovertemplate="reference point<br>(%{x:.4f}, %{y:.4f})<extra></extra>"))
    better = {True: "higher is better", False: "lower is better"}
    figure.update_layout(
        title={"text": f"{y_task} against {x_task}: hypervolume {volume:.4g}", "font": {"size": FONT_SIZE + 3}},
        xaxis_title=f"{x_title} ({better[higher_is_better[0]]})",
        yaxis_title=f"{y_title} ({better[higher_is_better[1]]})",
        font={"size": FONT_SIZE}, height=480, legend={"title": {"text": "Method"}},
        xaxis={"tickfont": {"size": FONT_SIZE - 1}}, yaxis={"tickfont": {"size": FONT_SIZE - 1}},
        margin={"l": 70, "r": 20, "t": 60, "b": 60}, template="plotly_white")
    return figure


def _staircase(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """The front drawn as the boundary of the region it dominates: from each point straight along
    y to the next point's y, then along x to it (points sorted from the worst x to the best)."""
    out_x, out_y = [xs[0]], [ys[0]]
    for x, y in zip(xs[1:], ys[1:], strict=True):
        out_x += [out_x[-1], x]
        out_y += [y, y]
    return out_x, out_y


def parallel_figure(summaries: pd.DataFrame, suite: SuiteInfo, tasks: Sequence[str]) -> go.Figure:
    """One line per finished run across every task's final metric (and delta-m when known), in
    its method's colour; an axis is flipped for lower-is-better metrics so that up is always better."""
    done = summaries[summaries["status"] == "done"].reset_index(drop=True)
    series = pd.Series(np.where(done["arch"] == BASELINE_ARCH, BASELINE_SERIES, done["method"]))
    methods = list(dict.fromkeys(series))
    colors = {**viz.method_colors(), BASELINE_SERIES: BASELINE_COLOR}
    index = series.map({m: i for i, m in enumerate(methods)}).to_numpy(dtype=float)
    n = max(len(methods) - 1, 1)
    # A discrete colour scale: method i owns the band around i / n.
    scale = []
    for i, method in enumerate(methods):
        low, high = max(0.0, (i - 0.5) / n), min(1.0, (i + 0.5) / n)
        scale += [[low, colors.get(method, viz.BASELINE_GREY)], [high, colors.get(method, viz.BASELINE_GREY)]]
    if len(methods) == 1:
        scale = [[0.0, colors.get(methods[0], viz.BASELINE_GREY)], [1.0, colors.get(methods[0], viz.BASELINE_GREY)]]
    dimensions = []
    for task in tasks:
        info = suite.task(task)
        values = done[task].astype(float)
        low, high = float(values.min()), float(values.max())
        pad = (high - low) * 0.05 or abs(high) * 0.05 or 1.0
        span = [low - pad, high + pad] if info.higher_is_better else [high + pad, low - pad]
        dimensions.append({"label": f"{task} {viz.metric_title(info.metric, info.unit)}"
                                    f" {'↑' if info.higher_is_better else '↓ (flipped)'}",
                           "values": values, "range": span})
    if "delta_m" in done and done["delta_m"].notna().any():
        dimensions.append({"label": "Δm % (+ better)", "values": done["delta_m"].astype(float)})
    figure = go.Figure(go.Parcoords(
        line={"color": index, "colorscale": scale, "cmin": 0, "cmax": n},
        dimensions=dimensions, labelfont={"size": FONT_SIZE}, tickfont={"size": FONT_SIZE - 3}))
    for method in methods:  # a legend: parcoords has none of its own
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=method_label(method),
                                    line={"color": colors.get(method, viz.BASELINE_GREY), "width": 4}))
    figure.update_layout(font={"size": FONT_SIZE}, height=460, template="plotly_white",
                         xaxis={"visible": False}, yaxis={"visible": False},
                         legend={"orientation": "h", "y": -0.05, "title": {"text": "Method"}},
                         margin={"l": 80, "r": 80, "t": 70, "b": 40})
    return figure


# --- the results table --------------------------------------------------------------------------

def display_table(table: pd.DataFrame, suite: SuiteInfo, tasks: Sequence[str]) -> pd.DataFrame:
    """The results table as shown: method name, architecture, seeds, "mean ± std" per task, delta-m
    (the sign in its title), mean rank, time per step and the STL baseline runs used."""
    if table.empty:
        return pd.DataFrame()
    names = [BASELINE_LABEL if arch == "stl" and method == "ew" else method_label(method)
             for method, arch in zip(table["method"], table["arch"], strict=True)]
    shown = {"Method": names, "Architecture": table["arch"],
             "Seeds": table["seeds"]}
    for task in tasks:
        info = suite.task(task)
        title = f"{task}: {viz.metric_title(info.metric, info.unit)} {'↑' if info.higher_is_better else '↓'}"
        shown[title] = [pm(m, s) for m, s in zip(table[f"{task} mean"], table[f"{task} std"], strict=True)]
    shown["Δm % (+ is better)"] = [pm(m, s, digits=2) for m, s in
                                    zip(table["delta_m mean"], table["delta_m std"], strict=True)]
    shown["Mean rank ↓"] = table["mean_rank"].round(2)
    shown["ms / step"] = table["ms_per_step"].round(1)
    shown["STL baseline runs"] = table["baseline_runs"].replace("", "none yet")
    shown["Runs"] = table["runs"]
    return pd.DataFrame(shown)


def status_table(summaries: pd.DataFrame) -> pd.DataFrame:
    """The grid's cells as they fill in: run, method, architecture, seed, status, progress."""
    if summaries.empty:
        return pd.DataFrame(columns=["Run", "Method", "Architecture", "Seed", "Status", "Progress"])
    return pd.DataFrame({
        "Run": summaries["run_id"],
        "Method": [BASELINE_LABEL if baseline else method_label(method)
                   for method, baseline in zip(summaries["method"], summaries["baseline"], strict=True)],
        "Architecture": summaries["arch"], "Seed": summaries["seed"], "Status": summaries["status"],
        "Progress": (summaries["steps_done"] / summaries["steps"]).clip(0, 1).astype(float),
    })


def run_label(method: str, arch: str) -> str:
    """How a run's method is named on the page: the STL baselines by their own name."""
    return BASELINE_LABEL if arch == BASELINE_ARCH else method_label(method)


def higher_is_better(suite: SuiteInfo, tasks: Sequence[str]) -> list[bool]:
    return [suite.task(task).higher_is_better for task in tasks]


def metric_axis_title(suite: SuiteInfo, task: str) -> str:
    info = suite.task(task)
    return f"{task}: {viz.metric_title(info.metric, info.unit)}"


def accuracy_domain(suite: SuiteInfo, task: str) -> tuple[float, float] | None:
    return (0.0, 1.0) if suite.task(task).metric == "accuracy" else None
