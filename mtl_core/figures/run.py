"""Figure builders: pure functions of DataFrames -> altair / plotly figures (no streamlit here).

Every chart of a run speaks the same visual language: **one colour per task**, fixed by the task's
position in its suite (so "left" is the same blue on the loss, the metric and the weights charts,
and in every run of that suite), axis titles with units, and a diverging scale pinned to [-1, 1]
for cosines so that a colour means the same angle at every step. Everything here is altair: a
live chart whose spec stays the same from one update to the next is redrawn in place (its data
swapped) without blank frames, so no spec depends on the latest step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from mtl_core.engine.conflict import cosine_pairs  # noqa: F401  (the cosine charts' input, for callers)
from mtl_core.engine.downsample import POINTS_PER_SERIES, decimate
from mtl_core.methods import METHODS
from mtl_core.registry import SuiteInfo

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision
# deficiencies. Reordered so the first tasks get the strongest contrasts on a white background
# (blue, orange, green, vermillion) and yellow, faint on a projector, comes last but one.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)

# Task *pairs* are not tasks: their lines get greys and dashes, never a task's colour.
_PAIR_DASHES: tuple[list[int], ...] = ([1, 0], [6, 3], [2, 2], [8, 3, 2, 3], [12, 4], [3, 5])
# Mid greys: readable on a white and on a dark background (#333333 vanished on dark).
_PAIR_GREYS: tuple[str, ...] = ("#5f5f5f", "#9a9a9a", "#7a7a7a")

STEP_TITLE = "Training step"
DEFAULT_MAX_POINTS = POINTS_PER_SERIES  # per line: 250 buckets of (first, min, max, last), see downsample.py
_LOG_FLOOR = 1e-8  # a log axis cannot show 0; losses that reach it are drawn at this floor

# A safety net, not the bound: every chart decimates its series (POINTS_PER_SERIES each), but a
# chart of many series (15 task pairs x 1,000 points) passes altair's 5,000-row inline limit, which
# would raise MaxRowsError on the page. The rows a chart holds stay bounded by the decimation.
alt.data_transformers.disable_max_rows()


# --- colours ------------------------------------------------------------------------------------

def task_colors(suite: SuiteInfo | Sequence[str]) -> dict[str, str]:
    """Task name -> colour, by the task's index in its suite (the same on every chart and run)."""
    names = suite.task_names if isinstance(suite, SuiteInfo) else tuple(suite)
    return {name: OKABE_ITO[i % len(OKABE_ITO)] for i, name in enumerate(names)}


def color_scale(colors: Mapping[str, str], tasks: Sequence[str] | None = None) -> alt.Scale:
    """An altair scale that pins each task (of ``tasks``, default all) to its colour."""
    domain = list(tasks) if tasks is not None else list(colors)
    return alt.Scale(domain=domain, range=[colors[task] for task in domain])


# Methods are not tasks: they get their own palette, so a method's colour never reads as a task's.
# Eight hues from Paul Tol's colour-blind-safe "bright", "vibrant" and "muted" schemes, picked for
# mid luminance: each has a contrast of at least 2.8:1 both on white and on Streamlit's dark
# background (#0e1117), where the light ones of the first cut (#EEDD88, #FFAABB) vanished on white
# and the dark ones (#332288, #882255) on dark. Eight hues cannot keep 20 methods apart, so the
# second channel is the line's dash: method i gets hue i mod 8 and dash i div 8. Equal weighting,
# the baseline every comparison starts from, is a neutral grey.
_METHOD_PALETTE: tuple[str, ...] = (
    "#4477AA",  # blue
    "#EE7733",  # orange
    "#228833",  # green
    "#EE3377",  # magenta
    "#009988",  # teal
    "#AA4499",  # purple
    "#999933",  # olive
    "#CC3311",  # red
)
METHOD_DASHES: tuple[list[int], ...] = ([1, 0], [7, 3], [2, 2])
BASELINE_GREY = "#777777"


def _method_order() -> list[str]:
    return [key for key in METHODS.keys() if key != "ew"]  # noqa: SIM118 (a Registry iterates entries)


def method_colors() -> dict[str, str]:
    """Method key -> colour, by the method's place in the registry (the same on every page)."""
    colors = {"ew": BASELINE_GREY}
    colors.update({key: _METHOD_PALETTE[i % len(_METHOD_PALETTE)] for i, key in enumerate(_method_order())})
    return colors


def method_dashes() -> dict[str, list[int]]:
    """Method key -> the line's dash pattern (vega's strokeDash), the channel that tells apart two
    methods sharing a hue; equal weighting and the first eight methods are solid."""
    dashes = {"ew": METHOD_DASHES[0]}
    dashes.update({key: METHOD_DASHES[(i // len(_METHOD_PALETTE)) % len(METHOD_DASHES)]
                   for i, key in enumerate(_method_order())})
    return dashes


def method_scales(methods: Sequence[str]) -> tuple[alt.Scale, alt.Scale]:
    """Altair colour and strokeDash scales that pin each of ``methods`` (registry keys) to its
    colour and dash: use both on a chart with one line per method, e.g.
    ``color=alt.Color("method:N", scale=colour)``, ``strokeDash=alt.StrokeDash("method:N", scale=dash)``."""
    colors, dashes = method_colors(), method_dashes()
    domain = list(methods)
    return (alt.Scale(domain=domain, range=[colors[m] for m in domain]),
            alt.Scale(domain=domain, range=[dashes[m] for m in domain]))


# --- data shaping -------------------------------------------------------------------------------

def downsample(df: pd.DataFrame, max_points: int = DEFAULT_MAX_POINTS, *,
               by: str | Sequence[str] | None = "task", x: str = "step") -> pd.DataFrame:
    """At most ``max_points`` rows per line (group of ``by``): the min/max-preserving decimation of
    :func:`mtl_core.engine.downsample.decimate` (per bucket of steps its first, min, max and last
    point), so a spike survives and each line keeps its first and last point (the curve spans the
    whole run and ends at its final value). Lines already short enough are returned whole."""
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2 (got {max_points})")
    return decimate(df, max_points, by=by, x=x, y="value")


def _finite(df: pd.DataFrame, column: str = "value") -> pd.DataFrame:
    """Drop NaN / inf (a diverged run's last steps): JSON cannot carry them and axes would break."""
    values = pd.to_numeric(df[column], errors="coerce")
    return df[np.isfinite(values)]


def steps_per_second(times: pd.DataFrame, window: int = 50) -> float | None:
    """Recent speed from the ``time_s`` records (columns step, value: seconds since training began),
    over the last ``window`` steps so that a change of speed shows; None before two records."""
    if len(times) < 2:
        return None
    recent = times.sort_values("step").tail(window + 1)
    steps = recent["step"].iloc[-1] - recent["step"].iloc[0]
    seconds = recent["value"].iloc[-1] - recent["value"].iloc[0]
    return float(steps / seconds) if seconds > 0 else None


# --- per-task line charts -----------------------------------------------------------------------

def task_lines_chart(df: pd.DataFrame, colors: Mapping[str, str], *, y_title: str,
                     title: str = "", log_y: bool = False, max_points: int = DEFAULT_MAX_POINTS,
                     y_domain: tuple[float, float] | None = None, x_max: int | None = None,
                     height: int = 250) -> alt.Chart:
    """One line per task (columns step, task, value) in the task's colour; the shared builder of
    the loss, metric and weight charts. ``x_max`` (the run's total steps) pins the step axis so
    that every chart of a run lines up and a live curve grows from left to right."""
    data = _finite(df[["step", "task", "value"]].copy())
    data["value"] = data["value"].astype(float)
    if log_y:
        data["value"] = data["value"].clip(lower=_LOG_FLOOR)
    data = downsample(data, max_points)
    tasks = list(colors)  # the legend lists every task of the run, data or not yet
    if log_y:
        y_scale = alt.Scale(type="log")
    elif y_domain is not None:
        y_scale = alt.Scale(domain=list(y_domain))
    else:
        y_scale = alt.Scale(zero=False)
    chart = alt.Chart(data, height=height).mark_line(strokeWidth=2, clip=True).encode(
        x=_step_axis(x_max),
        y=alt.Y("value:Q", title=y_title, scale=y_scale,
                axis=alt.Axis(format="~g", values=log_ticks(data["value"]) if log_y else alt.Undefined)),
        color=alt.Color("task:N", title="Task", scale=color_scale(colors, tasks)),
        tooltip=[alt.Tooltip("task:N", title="Task"), alt.Tooltip("step:Q", title="Step"),
                 alt.Tooltip("value:Q", title=y_title, format=".4g")],
    )
    return chart.properties(title=title) if title else chart


def log_ticks(values: pd.Series) -> list[float]:
    """Tick values for a log axis: the powers of ten the data span (Vega's own choice mixes
    mantissas, e.g. 3, 0.2, 0.01), with 2 and 5 between them when the data span less than a decade and a half."""
    if values.empty:
        return [1.0]
    low = math.floor(math.log10(float(values.min())))
    high = math.ceil(math.log10(float(values.max())))
    mantissas = (1, 2, 5) if math.log10(float(values.max()) / float(values.min())) < 1.5 else (1,)
    return [m * 10.0 ** k for k in range(low, high + 1) for m in mantissas if m * 10.0 ** k <= 10.0 ** high]


def _step_axis(x_max: int | None) -> alt.X:
    # From 0 on every chart, so a run's charts line up on the left however late their first
    # point (validation starts at eval_every); x_max pins the right end for a finished run.
    scale = alt.Scale(domain=[0, x_max], nice=False) if x_max else alt.Scale(domainMin=0)
    return alt.X("step:Q", title=STEP_TITLE, scale=scale, axis=alt.Axis(format="~s"))


def loss_chart(df: pd.DataFrame, colors: Mapping[str, str], *, log_y: bool = True,
               x_max: int | None = None, max_points: int = DEFAULT_MAX_POINTS) -> alt.Chart:
    """Per-task training loss (``scalars(split="train", metric="loss")``), log-y by default: task
    losses differ by orders of magnitude and a log axis shows each one's progress."""
    y_title = "Loss (log scale)" if log_y else "Loss"
    return task_lines_chart(df[df["metric"] == "loss"] if "metric" in df else df, colors,
                            y_title=y_title, title="Training loss per task", log_y=log_y,
                            x_max=x_max, max_points=max_points)


def metric_title(metric: str, unit: str = "") -> str:
    """"accuracy" -> "Accuracy", "mae" -> "MAE (pixels)"."""
    name = metric.upper() if metric in {"mae", "mse", "rmse"} else metric.replace("_", " ").capitalize()
    return f"{name} ({unit})" if unit else name


def _lower_first(text: str) -> str:
    return text if text[:2].isupper() else text[:1].lower() + text[1:]


def metric_charts(df: pd.DataFrame, suite: SuiteInfo, tasks: Sequence[str],
                  colors: Mapping[str, str], *, x_max: int | None = None,
                  max_points: int = DEFAULT_MAX_POINTS) -> list[tuple[str, alt.Chart]]:
    """Validation metric of each of ``tasks``, one chart per (metric, unit): accuracy and an
    error in pixels cannot share an axis. ``df`` is ``scalars(split="val")``; each task's own
    metric is picked. Returns (title, chart) pairs in the suite's task order."""
    groups: dict[tuple[str, str, bool], list[str]] = {}
    for task in suite.tasks:
        if task.name in tasks:
            groups.setdefault((task.metric, task.unit, task.higher_is_better), []).append(task.name)
    charts = []
    for (metric, unit, higher), names in groups.items():
        part = df[(df["metric"] == metric) & df["task"].isin(names)]
        better = "higher is better" if higher else "lower is better"
        title = f"Validation {_lower_first(metric_title(metric, unit))} — {better}"
        domain = (0.0, 1.0) if metric == "accuracy" else None
        chart = task_lines_chart(part, {t: colors[t] for t in names},
                                 y_title=metric_title(metric, unit),
                                 title=title, y_domain=domain, x_max=x_max, max_points=max_points)
        charts.append((title, chart))
    return charts


def weights_chart(df: pd.DataFrame, colors: Mapping[str, str], *, x_max: int | None = None,
                  max_points: int = DEFAULT_MAX_POINTS) -> alt.Chart:
    """Each task's loss weight over training (``scalars(split="train", metric="weight")``)."""
    part = df[df["metric"] == "weight"] if "metric" in df else df
    return task_lines_chart(part, colors, y_title="Task weight", title="Task weights",
                            x_max=x_max, max_points=max_points)


def update_alignment_chart(df: pd.DataFrame, colors: Mapping[str, str], *, x_max: int | None = None,
                           max_points: int = DEFAULT_MAX_POINTS) -> alt.LayerChart:
    """cos(update, g_t) per task (``scalars(split="train", metric="cos_update")``): how directly the
    step the method takes descends each task's loss; below 0 the step raises it, to first order."""
    part = df[df["metric"] == "cos_update"] if "metric" in df else df
    lines = task_lines_chart(part, colors, y_title="cos(update, task gradient)", y_domain=(-1.0, 1.0),
                             x_max=x_max, max_points=max_points)
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#888888", strokeWidth=1).encode(y="y:Q")
    return alt.layer(zero, lines).properties(title="How the update treats each task (below 0: it hurts)")


def update_norm_chart(df: pd.DataFrame, *, x_max: int | None = None,
                      max_points: int = DEFAULT_MAX_POINTS) -> alt.Chart:
    """The norm of the shared parameters' update direction: methods differ in scale (DESIGN: each
    keeps its paper's), and a collapsing norm is how a method stalls."""
    part = df[df["metric"] == "update_norm"] if "metric" in df else df
    return task_lines_chart(part.assign(task="update"), {"update": BASELINE_GREY}, log_y=True,
                            y_title="Update norm (log scale)", title="Update norm (shared parameters)",
                            x_max=x_max, max_points=max_points)


def all_tasks_equal(df: pd.DataFrame) -> bool:
    """Whether every task has the same value at every step (equal weighting's flat lines, which
    would otherwise hide each other)."""
    if df.empty:
        return False
    # Built-in aggregations: a Python lambda per step took 0.4 s on a 200,000-step run's sample.
    by_step = df.groupby("step")["value"]
    spread = by_step.max() - by_step.min()
    return bool((spread.abs() <= 1e-12).all())


# --- gradient conflict --------------------------------------------------------------------------

def cosine_heatmap(matrix: Sequence[Sequence[float]], tasks: Sequence[str], *,
                   size: int = 280) -> alt.LayerChart:
    """The T x T cosines between task gradients on the shared parameters (rows and columns in
    ``tasks`` order), with a diverging scale pinned to [-1, 1]: red is conflict (the tasks pull
    the shared weights apart), blue is agreement, white is unrelated.

    Altair rather than plotly, though plotly is this project's usual heatmap: the live dashboard
    redraws it every few seconds, and a plotly chart is rebuilt from scratch on every update while a
    vega view only swaps its data (measured in Chromium: the page's main thread went from busy
    ~100% of the time to about half). The step of the matrix is not in the spec for the same
    reason (a changed spec is a rebuilt view): the page shows it next to the chart.
    """
    rows = [(tasks[i], tasks[j], float(value))
            for i, row in enumerate(matrix) for j, value in enumerate(row)
            if value is not None and math.isfinite(value)]
    data = pd.DataFrame(rows, columns=["row", "column", "cosine"])
    order = list(tasks)
    base = alt.Chart(data, width=size, height=size).encode(
        x=alt.X("column:N", title="Task", sort=order, scale=alt.Scale(domain=order),
                axis=alt.Axis(labelAngle=0, orient="bottom")),
        y=alt.Y("row:N", title="Task", sort=order, scale=alt.Scale(domain=order)),
    )
    cells = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color("cosine:Q", title="cosine",
                        scale=alt.Scale(domain=[-1, 1], domainMid=0, scheme="redblue"),
                        legend=alt.Legend(values=[-1, -0.5, 0, 0.5, 1], format="~g")),
        tooltip=[alt.Tooltip("row:N", title="Task"), alt.Tooltip("column:N", title="with"),
                 alt.Tooltip("cosine:Q", format="+.3f")],
    )
    labels = base.mark_text(fontSize=15).encode(
        text=alt.Text("cosine:Q", format="+.2f"),
        # White on the dark ends of the scale, black on the light middle.
        color=alt.condition("abs(datum.cosine) > 0.6", alt.value("white"), alt.value("black")),
    )
    return alt.layer(cells, labels).properties(title="Gradient cosine between tasks")


def cosine_history_chart(pairs: pd.DataFrame, *, x_max: int | None = None,
                         max_points: int = DEFAULT_MAX_POINTS, height: int = 250) -> alt.LayerChart:
    """Each pair's gradient cosine over training (from :func:`cosine_pairs`), with the zero line:
    below it the two tasks' gradients conflict."""
    data = downsample(_finite(pairs), max_points, by="pair")
    names = list(dict.fromkeys(data["pair"])) if not data.empty else []
    scale = alt.Scale(domain=names, range=[_PAIR_GREYS[i % len(_PAIR_GREYS)] for i in range(len(names))])
    dashes = alt.Scale(domain=names, range=[_PAIR_DASHES[i % len(_PAIR_DASHES)] for i in range(len(names))])
    lines = alt.Chart(data, height=height).mark_line(strokeWidth=2, clip=True).encode(
        x=_step_axis(x_max),
        y=alt.Y("value:Q", title="Gradient cosine", scale=alt.Scale(domain=[-1, 1])),
        color=alt.Color("pair:N", title="Task pair", scale=scale),
        strokeDash=alt.StrokeDash("pair:N", title="Task pair", scale=dashes),
        tooltip=[alt.Tooltip("pair:N", title="Pair"), alt.Tooltip("step:Q", title="Step"),
                 alt.Tooltip("value:Q", title="cosine", format="+.3f")],
    )
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#888888", strokeWidth=1).encode(
        y="y:Q")
    return alt.layer(zero, lines).properties(title="Gradient cosine per task pair (below 0: conflict)")
