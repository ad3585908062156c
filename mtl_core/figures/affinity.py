"""Figures of task relationships: affinity heatmaps and the network view (pure functions -> altair).

Every matrix here reads the same way: row i, column j is what task i does *for* task j (a step on
i's gradient, or learning beside i), so a column is what a task receives. Colours: each task's own
colour on its labels and node (``viz.task_colors``), and one diverging red-blue scale centred on 0
for the values, symmetric around it so that equal help and harm get equally strong colours (blue:
helps, red: hurts; ColorBrewer's RdBu, readable with the common colour-vision deficiencies).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations

import altair as alt
import numpy as np
import pandas as pd

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_NEUTRAL = "#555555"
# The plot keeps its own size and its legend and labels are added around it: Streamlit would
# otherwise fit everything into its default height and shrink the cells to slivers.
NATURAL_SIZE = alt.AutoSizeParams(type="pad", contains="padding")


def label_color(colors: Mapping[str, str]) -> alt.ExprRef:
    """A vega expression giving each task label its task's colour (others grey)."""
    expr = f"'{_NEUTRAL}'"
    for task, color in reversed(list(colors.items())):
        expr = f"datum.value === {task!r} ? '{color}' : {expr}"
    return alt.expr(expr)


def display_exponent(values: np.ndarray) -> int:
    """The power of ten to show small values in: the largest finite |value| shown between 1 and
    10 when it is under 0.1 (TAG's affinities are often ~1e-3), else 0."""
    finite = np.abs(values[np.isfinite(values)])
    if finite.size == 0 or finite.max() == 0 or finite.max() >= 0.1:
        return 0
    return int(math.floor(math.log10(finite.max())))


def unit_suffix(exponent: int) -> str:
    return "" if exponent == 0 else f" (×10{str(exponent).translate(_SUPERSCRIPT)})"


def compact_number(value: float) -> str:
    """At most five characters with the sign, two significant digits: "+0.14", "-1.1", "+4e-3"
    (a cell is about 40 px wide, and one matrix's values can span five decades)."""
    if value == 0:
        return "0"
    if abs(value) >= 0.095:
        return f"{value:+.2g}" if abs(value) < 99.5 else f"{value:+.0f}"
    mantissa, exponent = f"{value:+.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def cell_labels(values: Sequence[float]) -> list[str]:
    """One matrix's cell values in one fixed format, "+0.42" beside "-0.00" (not "-6e-4" beside
    "-0.099"): decimals by the largest |value|, at most five characters with the sign. The heatmaps
    scale small matrices by a power of ten first (:func:`display_exponent`), so two decimals carry
    the values that matter."""
    finite = [abs(v) for v in values if math.isfinite(v)]
    reach = max(finite, default=0.0)
    decimals = 2 if reach < 9.995 else 1 if reach < 99.95 else 0
    return [f"{v:+.{decimals}f}" for v in values]


def _off_diagonal(matrix: pd.DataFrame) -> np.ndarray:
    values = matrix.to_numpy(dtype=float).copy()
    np.fill_diagonal(values, np.nan)
    return values


def affinity_heatmap(matrix: pd.DataFrame, colors: Mapping[str, str], *, title: str, value_title: str,
                     fixed_domain: tuple[float, float] | None = None, size: int = 250) -> alt.LayerChart:
    """A tasks x tasks matrix, rows "from" and columns "to", the diagonal left blank (a task's
    effect on itself would dwarf the rest of the scale). Values under 0.1 are shown scaled by a
    power of ten that the legend names. ``fixed_domain`` pins the colour scale (cosines: [-1, 1]);
    otherwise it is symmetric around 0 up to the largest |value|."""
    tasks = list(matrix.index)
    values = _off_diagonal(matrix)
    exponent = 0 if fixed_domain else display_exponent(values)
    rows = [(source, target, values[i, j] / 10.0**exponent)
            for i, source in enumerate(tasks) for j, target in enumerate(tasks) if np.isfinite(values[i, j])]
    data = pd.DataFrame(rows, columns=["source", "target", "value"])
    data["label"] = cell_labels(list(data["value"]))
    if fixed_domain is not None:
        domain = list(fixed_domain)
    else:
        reach = float(data["value"].abs().max()) if len(data) else 1.0
        domain = [-reach, reach] if reach > 0 else [-1.0, 1.0]
    legend_title = value_title + unit_suffix(exponent)
    labels = label_color(colors)
    base = alt.Chart(data, width=size, height=size).encode(
        x=alt.X("target:N", title="to task j", sort=tasks, scale=alt.Scale(domain=tasks),
                axis=alt.Axis(labelAngle=-40, labelOverlap=False, orient="bottom", labelColor=labels, labelFontSize=13,
                              labelFontWeight="bold", titleFontSize=13)),
        y=alt.Y("source:N", title="from task i", sort=tasks, scale=alt.Scale(domain=tasks),
                axis=alt.Axis(labelColor=labels, labelFontSize=13, labelFontWeight="bold", titleFontSize=13)),
    )
    cells = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color("value:Q", title=legend_title,
                        scale=_diverging(domain, symlog=fixed_domain is None),
                        legend=alt.Legend(format="+.2~f", titleFontSize=12, labelFontSize=12, orient="bottom",
                                          direction="horizontal", gradientLength=size, titleLimit=size)),
        tooltip=[alt.Tooltip("source:N", title="from"), alt.Tooltip("target:N", title="to"),
                 alt.Tooltip("value:Q", title=legend_title, format="+.3f")],
    )
    reach = max(abs(domain[0]), abs(domain[1]))
    text = base.mark_text(fontSize=13).encode(
        text="label:N",
        # White on the dark ends of the scale, black on the light middle.
        color=alt.condition(f"abs(datum.value) > {0.6 * reach}", alt.value("white"), alt.value("black")),
    )
    return alt.layer(cells, text).properties(title=alt.TitleParams(title, fontSize=15, anchor="start"),
                                             autosize=NATURAL_SIZE)


def _diverging(domain: list[float], *, symlog: bool) -> alt.Scale:
    """Red-blue around 0. ``symlog``: a symmetric log scale, linear within 1/100 of the largest
    |value| of 0 and logarithmic beyond, so that one task's huge effect does not wash every other
    cell out to white (TAG's rows can differ by four decades)."""
    if not symlog:
        return alt.Scale(domain=domain, domainMid=0, scheme="redblue")
    reach = max(abs(domain[0]), abs(domain[1]))
    return alt.Scale(type="symlog", constant=reach / 100, domain=domain, domainMid=0, scheme="redblue")


def network_edges(matrix: pd.DataFrame) -> pd.DataFrame:
    """One edge per pair of tasks, weighted by the mean of the two directions (A[i,j] + A[j,i]) / 2;
    pairs not measured (NaN) have no edge. Columns a, b, value."""
    tasks = list(matrix.index)
    rows = []
    for a, b in combinations(tasks, 2):
        value = (matrix.at[a, b] + matrix.at[b, a]) / 2
        if math.isfinite(value):
            rows.append((a, b, float(value)))
    return pd.DataFrame(rows, columns=["a", "b", "value"])


def network_chart(matrix: pd.DataFrame, colors: Mapping[str, str], *, title: str, value_title: str,
                  size: int = 360) -> alt.LayerChart:
    """Tasks as nodes on a circle (in their colours), every pair joined by an edge whose width is
    the size of their mutual affinity and whose colour its sign (blue: they help each other); both
    on the symmetric log scale of the heatmaps, so that small affinities still show."""
    tasks = list(matrix.index)
    angles = {task: math.pi / 2 - 2 * math.pi * k / len(tasks) for k, task in enumerate(tasks)}
    where = {task: (math.cos(angle), math.sin(angle)) for task, angle in angles.items()}
    edges = network_edges(matrix)
    exponent = display_exponent(edges["value"].to_numpy()) if len(edges) else 0
    edges["shown"] = edges["value"] / 10.0**exponent
    edges["size"] = edges["shown"].abs()
    edges["pair"] = edges["a"] + " – " + edges["b"]
    edges[["x", "y"]] = [where[a] for a in edges["a"]] if len(edges) else np.empty((0, 2))
    edges[["x2", "y2"]] = [where[b] for b in edges["b"]] if len(edges) else np.empty((0, 2))
    reach = float(edges["size"].max()) if len(edges) and edges["size"].max() > 0 else 1.0
    legend_title = value_title + unit_suffix(exponent)
    axis = alt.Scale(domain=[-1.45, 1.45])
    plain = None  # no axes: positions on the circle mean nothing
    lines = alt.Chart(edges.sort_values("size"), width=size, height=size).mark_rule(strokeCap="round").encode(
        x=alt.X("x:Q", scale=axis, axis=plain), y=alt.Y("y:Q", scale=axis, axis=plain), x2="x2:Q", y2="y2:Q",
        color=alt.Color("shown:Q", title=legend_title,
                        scale=_diverging([-reach, reach], symlog=True),
                        legend=alt.Legend(format="+.2~f", titleFontSize=12, labelFontSize=12, orient="bottom",
                                          direction="horizontal", gradientLength=size - 80, titleLimit=size)),
        strokeWidth=alt.StrokeWidth("size:Q", legend=None, scale=alt.Scale(
            type="symlog", constant=reach / 100, domain=[0, reach], range=[0.5, 14])),
        tooltip=[alt.Tooltip("pair:N", title="pair"), alt.Tooltip("shown:Q", title=legend_title, format="+.3f")],
    )
    nodes = pd.DataFrame({"task": tasks, "x": [where[t][0] for t in tasks], "y": [where[t][1] for t in tasks],
                          "label_x": [1.27 * where[t][0] for t in tasks],
                          "label_y": [1.22 * where[t][1] for t in tasks]})
    task_scale = alt.Scale(domain=tasks, range=[colors.get(t, _NEUTRAL) for t in tasks])
    dots = alt.Chart(nodes).mark_circle(size=700, opacity=1, stroke="white", strokeWidth=2).encode(
        x=alt.X("x:Q", scale=axis, axis=plain), y=alt.Y("y:Q", scale=axis, axis=plain),
        color=alt.Color("task:N", scale=task_scale, legend=None), tooltip=[alt.Tooltip("task:N", title="task")])
    names = alt.Chart(nodes).mark_text(fontSize=14, fontWeight="bold").encode(
        x=alt.X("label_x:Q", scale=axis, axis=plain), y=alt.Y("label_y:Q", scale=axis, axis=plain),
        text="task:N", color=alt.Color("task:N", scale=task_scale, legend=None))
    return (alt.layer(lines, dots, names).resolve_scale(color="independent")
            .properties(title=alt.TitleParams(title, fontSize=15, anchor="start"), autosize=NATURAL_SIZE))
