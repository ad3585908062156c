"""Figures of the Compare page: curves with mean +/- std bands over seeds, final values as points
with error bars and the differences to the reference method with their 95 % intervals, the Pareto
plot of two tasks with the non-dominated runs marked and the hypervolume, parallel coordinates for
more tasks, and the results table as a person reads it (noise verdicts and tied ranks included).
Pure functions (no streamlit); the page places them.

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

from mtl_core.architectures import ARCHITECTURES
from mtl_core.engine.downsample import POINTS_PER_SERIES, decimate
from mtl_core.engine.metrics import (
    CONFIDENCE,
    REFERENCE_NOTE,
    hypervolume,
    non_dominated,
    pm,
    reference_point,
    verdict_text,
)
from mtl_core.figures import run as viz
from mtl_core.methods import METHODS
from mtl_core.registry import SuiteInfo

FONT_SIZE = 15  # projector-readable
BASELINE_LABEL = "STL baselines (one network per task)"
BASELINE_SERIES = "stl"  # the baselines' key among the methods of a chart
BASELINE_ARCH = "stl"
FRONT_COLOR = "#888888"  # mid-grey: a ring and a dotted line seen on the light and the dark theme
BASELINE_COLOR = "#A0785A"  # brown: no method's colour, and readable on the light and the dark theme alike


def method_label(method: str) -> str:
    if method == BASELINE_SERIES:
        return BASELINE_LABEL
    return METHODS[method].name if method in METHODS else method


def arch_label(arch: str) -> str:
    """An architecture key's display name ("hps" -> "Hard parameter sharing")."""
    return ARCHITECTURES[arch].name if arch in ARCHITECTURES else arch


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
    as a shaded band; the STL baselines as a brown line. With several architectures, one chart
    per architecture, stacked, each with the baselines for reference. ``height`` is the whole
    chart's, legend below included (Streamlit fits the spec into it)."""
    # One band per method and architecture, decimated like every curve (first, min, max and last
    # mean per bucket of steps): a long grid's validation every step stays a bounded chart.
    data = decimate(bands[bands["task"] == task], POINTS_PER_SERIES, by=["method", "arch"], y="mean").copy()
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
    """Each method's colour and dash (``viz.method_scales``), the STL baselines in brown, solid."""
    methods = [m for m in series if m != BASELINE_SERIES]
    colour, dash = viz.method_scales(methods)
    baseline = [BASELINE_SERIES] if BASELINE_SERIES in series else []
    colours = [*colour.range, *([BASELINE_COLOR] if baseline else [])]
    dashes = [*dash.range, *([[1, 0]] if baseline else [])]
    # The domain in the ranges' order: the baselines' row may come first in a table ranked by
    # delta-m, and a domain in the rows' order gave each method its neighbour's colour.
    domain = [*colour.domain, *baseline]
    return alt.Scale(domain=domain, range=colours), alt.Scale(domain=domain, range=dashes)


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
    shapes: other architectures); the non-dominated runs ringed in grey and joined by the front's
    staircase; the reference point of the hypervolume as a grey cross."""
    colors = viz.method_colors()
    symbols = ["circle", "diamond", "triangle-up", "cross", "star", "hexagon", "pentagon"]  # square: STL
    archs = [a for a in dict.fromkeys(points["arch"]) if a != BASELINE_ARCH]
    figure = go.Figure()
    front = points[points["front"]].sort_values(x_task, ascending=higher_is_better[0])  # worst x first
    if len(front):
        xs, ys = _staircase(front[x_task].tolist(), front[y_task].tolist())
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="Pareto front",
                                    line={"color": FRONT_COLOR, "width": 1.5, "dash": "dot"},
                                    hoverinfo="skip"))
    for (method, arch), group in points.groupby(["method", "arch"], sort=False):
        baseline = arch == BASELINE_ARCH
        name = BASELINE_LABEL if baseline else method_label(method)
        figure.add_trace(go.Scatter(
            x=group[x_task], y=group[y_task], mode="markers",
            name=f"{name} · {arch}" if len(archs) > 1 and not baseline else name,
            marker={"color": BASELINE_COLOR if baseline else colors.get(method, viz.BASELINE_GREY), "size": 14,
                    "symbol": "square" if baseline else symbols[archs.index(arch) % len(symbols)],
                    "line": {"color": FRONT_COLOR,
                             "width": [3 if f else 0 for f in group["front"]]}},
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
    """The results table as shown: rank (ties "=2"), method and architecture by name, seeds,
    "mean ± std" per task with its verdict against the reference method, delta-m (the sign in its
    title) with its verdict and 95 % interval, mean rank, time per step and the STL baseline runs
    used. The verdict columns appear when the table has them (:func:`mtl_core.runs.sweep.results_table`)."""
    if table.empty:
        return pd.DataFrame()
    names = [BASELINE_LABEL if arch == "stl" and method == "ew" else method_label(method)
             for method, arch in zip(table["method"], table["arch"], strict=True)]
    tested = "verdict" in table
    shown = {"Rank": table["rank"]} if tested else {}
    shown |= {"Method": names, "Architecture": table["arch"].map(arch_label), "Seeds": table["seeds"]}
    against = reference_label(table) if tested else ""
    for task in tasks:
        info = suite.task(task)
        title = f"{task}: {viz.metric_title(info.metric, info.unit)} {'↑' if info.higher_is_better else '↓'}"
        shown[title] = [pm(m, s) for m, s in zip(table[f"{task} mean"], table[f"{task} std"], strict=True)]
        if tested:
            shown[f"{task} vs {against}"] = [
                verdict_text(verdict, diff, low, high, note=REFERENCE_NOTE if note == REFERENCE_NOTE else "no test")
                for verdict, diff, low, high, note in zip(
                    table[f"{task} verdict"], table[f"{task} diff"], table[f"{task} low"],
                    table[f"{task} high"], table["note"], strict=True)]
    shown["Δm % (+ is better)"] = [pm(m, s, digits=2) for m, s in
                                    zip(table["delta_m mean"], table["delta_m std"], strict=True)]
    if tested:
        shown[f"Δm vs {against} ({CONFIDENCE:.0%} interval)"] = [
            verdict_text(v, d, lo, hi, note=n, digits=2) for v, d, lo, hi, n in
            zip(table["verdict"], table["delta_m diff"], table["delta_m low"], table["delta_m high"],
                table["note"], strict=True)]
    shown["Mean rank ↓"] = table["mean_rank"].round(2)
    shown["ms / step"] = table["ms_per_step"].round(1)
    shown["STL baseline runs"] = table["baseline_runs"].replace("", "none yet")
    shown["Runs"] = table["runs"]
    return pd.DataFrame(shown)


def reference_label(table: pd.DataFrame) -> str:
    """Whom the verdicts compare with: "Equal weighting", or "Equal weighting · Hard parameter
    sharing" when the table's rows are tested against one architecture's reference row."""
    methods = set(table["reference"])
    name = method_label(next(iter(methods))) if len(methods) == 1 else "reference"
    archs = set(table["reference_arch"])
    mtl_archs = set(table["arch"]) - {BASELINE_ARCH}
    return f"{name} · {arch_label(next(iter(archs)))}" if len(archs) == 1 and len(mtl_archs) > 1 else name


# --- final values with error bars ---------------------------------------------------------------------

def interval_frame(table: pd.DataFrame, *, measure: str, differences: bool = False) -> pd.DataFrame:
    """The rows of a results table as (label, series, value, low, high, verdict) for one measure (a
    task or "delta_m"): the mean and mean ± std over seeds, or with ``differences`` the difference
    to the reference method and its 95 % interval (rows without an interval are left out)."""
    archs = [a for a in dict.fromkeys(table["arch"]) if a != BASELINE_ARCH]
    labels = [run_label(m, a) + (f" · {arch_label(a)}" if len(archs) > 1 and a != BASELINE_ARCH else "")
              for m, a in zip(table["method"], table["arch"], strict=True)]
    series = np.where(table["arch"] == BASELINE_ARCH, BASELINE_SERIES, table["method"])
    verdict_column = "verdict" if measure == "delta_m" else f"{measure} verdict"
    verdicts = table[verdict_column] if verdict_column in table else pd.Series([""] * len(table))
    if differences:
        value, low, high = (table[f"{measure} {key}"] for key in ("diff", "low", "high"))
    else:
        std = table[f"{measure} std"].fillna(0.0)
        value = table[f"{measure} mean"]
        low, high = value - std, value + std
    frame = pd.DataFrame({"label": labels, "series": series, "value": value.to_numpy(dtype=float),
                          "low": low.to_numpy(dtype=float), "high": high.to_numpy(dtype=float),
                          "verdict": verdicts.to_numpy(), "seeds": table["seeds"].to_numpy()})
    if differences and "note" in table:
        frame = frame[(table["note"] != REFERENCE_NOTE).to_numpy()]
    return frame[np.isfinite(frame[["value", "low", "high"]]).all(axis=1)].reset_index(drop=True)


def interval_chart(frame: pd.DataFrame, *, title: str, x_title: str, rule_at: float | None = None,
                   rule_label: str = "") -> alt.LayerChart:
    """One row per method: a point at ``value`` and a bar from ``low`` to ``high``, in the
    method's colour (the STL baselines brown); the x axis zoomed to the data (not from 0), a dashed
    vertical rule at ``rule_at`` (0 for differences: an interval across it is within noise; the
    reference's mean for values)."""
    series = list(dict.fromkeys(frame["series"]))
    colour, _ = _series_scales(series)
    span = [float(frame["low"].min()), float(frame["high"].max())]
    if rule_at is not None:
        span = [min(span[0], rule_at), max(span[1], rule_at)]
    pad = (span[1] - span[0]) * 0.08 or abs(span[1]) * 0.05 or 1.0
    x_scale = alt.Scale(domain=[span[0] - pad, span[1] + pad], nice=False, zero=False)
    y = alt.Y("label:N", title=None, sort=list(frame["label"]),
              axis=alt.Axis(labelLimit=260, labelFontSize=FONT_SIZE - 2))
    tooltip = [alt.Tooltip("label:N", title="Method"), alt.Tooltip("value:Q", title="Value", format=".4f"),
               alt.Tooltip("low:Q", title="Low", format=".4f"), alt.Tooltip("high:Q", title="High", format=".4f"),
               alt.Tooltip("seeds:N", title="Seeds"), alt.Tooltip("verdict:N", title="Verdict")]
    base = alt.Chart(frame)
    bars = base.mark_rule(strokeWidth=3).encode(
        x=alt.X("low:Q", title=x_title, scale=x_scale, axis=alt.Axis(tickCount=6)), x2="high:Q", y=y,
        color=alt.Color("series:N", scale=colour, legend=None), tooltip=tooltip)
    points = base.mark_point(filled=True, size=140, opacity=1).encode(
        x=alt.X("value:Q", scale=x_scale), y=y, color=alt.Color("series:N", scale=colour, legend=None),
        tooltip=tooltip)
    layers = [bars, points]
    if rule_at is not None:
        rule = alt.Chart(pd.DataFrame({"x": [rule_at], "what": [rule_label]})).mark_rule(
            strokeDash=[5, 4], color=viz.BASELINE_GREY, strokeWidth=1.5).encode(
            x=alt.X("x:Q", scale=x_scale), tooltip=[alt.Tooltip("what:N", title="Line")])
        layers.insert(0, rule)
    height = 60 + 38 * len(frame)
    return alt.layer(*layers).properties(title=title, height=height).configure_axis(
        labelFontSize=FONT_SIZE - 2, titleFontSize=FONT_SIZE - 1).configure_title(fontSize=FONT_SIZE + 1)


def final_value_charts(table: pd.DataFrame, suite: SuiteInfo, tasks: Sequence[str]) -> list[alt.LayerChart]:
    """Per task (and delta-m, when known): every row's final value as a point with a mean ± std
    bar over seeds, the reference method's mean as a dashed line; then, when the table has the
    tests, delta-m's difference to the reference with its 95 % interval and a line at 0."""
    charts = []
    references = table[table["note"] == REFERENCE_NOTE] if "note" in table else table.iloc[:0]
    for measure in [*tasks, "delta_m"]:
        frame = interval_frame(table, measure=measure)
        if frame.empty:
            continue
        if measure == "delta_m":
            x_title, title = "Δm % (+ is better)", "Δm %: mean ± std over seeds"
        else:
            info = suite.task(measure)
            x_title = f"{metric_axis_title(suite, measure)} ({'higher' if info.higher_is_better else 'lower'} is better)"
            title = f"{measure}: final {viz.metric_title(info.metric, info.unit).lower()}, mean ± std over seeds"
        column = f"{measure} mean"
        rule = float(references[column].iloc[0]) if len(references) == 1 else None
        charts.append(interval_chart(frame, title=title, x_title=x_title, rule_at=rule,
                                     rule_label="the reference method's mean"))
    if "delta_m diff" in table:
        frame = interval_frame(table, measure="delta_m", differences=True)
        if not frame.empty:
            charts.append(interval_chart(
                frame, title=f"Δm % minus {reference_label(table)}'s: {CONFIDENCE:.0%} interval",
                x_title="Difference in Δm % (+: better than the reference)", rule_at=0.0,
                rule_label="no difference: an interval across it is within noise"))
    return charts


def status_table(summaries: pd.DataFrame) -> pd.DataFrame:
    """The grid's cells as they fill in: run, method, architecture, seed, status, progress."""
    if summaries.empty:
        return pd.DataFrame(columns=["Run", "Method", "Architecture", "Seed", "Status", "Progress"])
    return pd.DataFrame({
        "Run": summaries["run_id"],
        "Method": [BASELINE_LABEL if baseline else method_label(method)
                   for method, baseline in zip(summaries["method"], summaries["baseline"], strict=True)],
        "Architecture": summaries["arch"].map(arch_label), "Seed": summaries["seed"], "Status": summaries["status"],
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


def zoomed_domain(bands: pd.DataFrame, task: str, *, bounds: tuple[float, float] | None = None,
                  pad: float = 0.05) -> tuple[float, float] | None:
    """The y range of one task's band chart: the data's (bands included), padded by ``pad`` of it
    and kept within ``bounds`` (0-1 for an accuracy), not the metric's whole range: on 0-1 the
    methods' curves, a few hundredths apart, lie on one line. None when there is nothing to draw."""
    data = bands[bands["task"] == task]
    values = pd.concat([data["low"], data["high"], data["mean"]]).astype(float)
    values = values[np.isfinite(values)]
    if values.empty:
        return None
    low, high = float(values.min()), float(values.max())
    margin = (high - low) * pad or abs(high) * pad or 0.01
    low, high = low - margin, high + margin
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return (low, high)


def metric_bounds(suite: SuiteInfo, task: str) -> tuple[float, float] | None:
    """The values a task's metric can take, where it is bounded: an accuracy lies in 0-1."""
    return (0.0, 1.0) if suite.task(task).metric == "accuracy" else None
