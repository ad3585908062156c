"""Figures of sharing: an architecture's diagram and the matrices of sharing it learns.

Pure functions from data to altair charts (no streamlit), like :mod:`mtl_core.figures.run`: the Sharing
page and the Train page draw them, tests check their specs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import altair as alt
import pandas as pd

from mtl_core.engine.records import GRADIENT_MATRICES

SHARED_GREY = "#7f7f7f"
LABEL_GREY = "#767676"
# Edge kinds of mtl_core.architectures.diagram, drawn so a reader tells them apart without a key.
_EDGE_DASH = {"data": [1, 0], "select": [2, 3], "mix": [1, 0], "penalty": [6, 4], "optional": [3, 3]}
_ROLE_SHAPE = {"input": "circle", "output": "circle", "gate": "diamond", "mixing": "diamond",
               "attention": "triangle-up"}
# Matrices whose cells are probabilities or shares (gates, execute probabilities, attention).
_UNIT_INTERVAL = ("gate", "load", "probability", "tree", "attention")
_TEXT_CELLS_UP_TO = 12  # write the value in each cell of matrices up to this many rows and columns


def diagram_layout(structure: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes with x (their depth) and y (spread evenly within their column, centred), and edges
    with both ends' coordinates: the drawing's geometry, separate from its styling."""
    nodes = pd.DataFrame(structure["nodes"])
    nodes["task"] = nodes["task"].fillna("shared")
    nodes["x"] = nodes["depth"].astype(float)
    nodes["y"] = 0.0
    tallest = int(nodes.groupby("depth").size().max())
    for _, column in nodes.groupby("depth"):
        offset = (tallest - len(column)) / 2
        nodes.loc[column.index, "y"] = [offset + i for i in range(len(column))]
    where = nodes.set_index("id")
    edges = pd.DataFrame(structure["edges"])
    edges["task"] = edges["task"].fillna("shared")
    for end, suffix in (("source", ""), ("target", "2")):
        edges["x" + suffix] = edges[end].map(where["x"])
        edges["y" + suffix] = edges[end].map(where["y"])
    edges["edge"] = range(len(edges))
    return nodes, edges


def diagram_chart(structure: Mapping[str, Any], colors: Mapping[str, str], *,
                  height: int = 320) -> alt.LayerChart:
    """Left to right, input to outputs: blocks coloured by the task they belong to (grey: built
    for all tasks), edges by the task whose features they carry; dashed edges are a penalty
    (soft sharing), a gate's reading of the input, or a block a task may skip (AdaShare)."""
    nodes, edges = diagram_layout(structure)
    domain = ["shared", *colors]
    scale = alt.Scale(domain=domain, range=[SHARED_GREY, *colors.values()])
    x = alt.X("x:Q", axis=None, scale=alt.Scale(padding=40))
    y = alt.Y("y:Q", axis=None, scale=alt.Scale(reverse=True, padding=20))
    lines = alt.Chart(edges).mark_rule(strokeWidth=2, opacity=0.7).encode(
        x=x, y=y, x2="x2:Q", y2="y2:Q",
        color=alt.Color("task:N", scale=scale, title="Belongs to"),
        strokeDash=alt.StrokeDash("kind:N", title="Connection",
                                  scale=alt.Scale(domain=list(_EDGE_DASH), range=list(_EDGE_DASH.values()))),
        tooltip=[alt.Tooltip("source:N", title="From"), alt.Tooltip("target:N", title="To"),
                 alt.Tooltip("kind:N", title="Connection")],
    )
    nodes["shape"] = nodes["role"].map(_ROLE_SHAPE).fillna("square")
    marks = alt.Chart(nodes).mark_point(filled=True, size=420, opacity=1).encode(
        x=x, y=y, color=alt.Color("task:N", scale=scale, title="Belongs to"),
        shape=alt.Shape("shape:N", scale=None),
        tooltip=[alt.Tooltip("label:N", title="Block"), alt.Tooltip("role:N", title="Kind"),
                 alt.Tooltip("task:N", title="Belongs to")],
    )
    # Vega's default black text vanished on Streamlit's dark theme, and a pure function cannot
    # know the theme: this grey has a contrast of 4.5:1 on white and 4.1:1 on the dark background.
    labels = alt.Chart(nodes).mark_text(dy=-18, fontSize=12, color=LABEL_GREY).encode(x=x, y=y, text="label:N")
    return alt.layer(lines, marks, labels).properties(height=height)


def is_unit_interval(name: str) -> bool:
    return any(word in name.lower() for word in _UNIT_INTERVAL)


def snapshot_heatmap(frame: pd.DataFrame, name: str, *, height: int | None = None) -> alt.Chart | alt.LayerChart:
    """One learned matrix (rows x columns, e.g. tasks x experts) as a heatmap with its name as title.
    Probabilities and gates use a fixed 0–1 scale, so frames of one run compare across steps."""
    cells = frame.copy()
    cells.index = cells.index.astype(str)
    cells.columns = cells.columns.astype(str)
    rows, columns = list(cells.index), list(cells.columns)
    long = cells.reset_index(names="row").melt(id_vars="row", var_name="column", value_name="value")
    values = long["value"].dropna()
    if is_unit_interval(name) or values.empty:
        low, high = 0.0, 1.0
    else:  # e.g. cross-stitch weights: from 0 (or below) to the largest, one light-to-dark scale
        low, high = min(0.0, float(values.min())), max(float(values.max()), 1e-12)
    scale = alt.Scale(domain=[low, high], scheme="blues")
    small = len(rows) <= _TEXT_CELLS_UP_TO and len(columns) <= _TEXT_CELLS_UP_TO
    # Streamlit sizes a chart with its axes, labels and legend inside the given size: leave room
    # for them around the cells, or the cells get squeezed to nothing.
    height = height or min((40 if small else 18) * len(rows), 320) + (100 if small else 50)
    base = alt.Chart(long, height=height).encode(
        # Explicit domains: Streamlit hands vega pandas' string columns in a form whose distinct
        # values vega cannot read back (every cell landed on one band without them).
        x=alt.X("column:N", sort=columns, scale=alt.Scale(domain=columns), title=None,
                axis=alt.Axis(labelAngle=0) if small else None),
        y=alt.Y("row:N", sort=rows, scale=alt.Scale(domain=rows), title=None,
                axis=alt.Axis() if small else None),
    )
    heat = base.mark_rect().encode(
        # Small matrices write each value in its cell: no legend to squeeze them.
        color=alt.Color("value:Q", scale=scale, title=None, legend=None if small else alt.Legend()),
        tooltip=[alt.Tooltip("row:N", title="Row"), alt.Tooltip("column:N", title="Column"),
                 alt.Tooltip("value:Q", format=".3f")],
    )
    if not small:
        return heat.properties(title=name)
    # A cell with no value (an expert a gate cannot reach, in CGC and PLE) stays blank: vega wrote "null".
    text = base.transform_filter("isValid(datum.value)").mark_text(fontSize=12).encode(
        text=alt.Text("value:Q", format=".2f"),
        # White on the dark end of the scale, black on the light end.
        color=alt.condition(f"datum.value > {low + 0.6 * (high - low)}", alt.value("white"), alt.value("black")),
    )
    return alt.layer(heat, text).properties(title=name)


def snapshot_names(matrices: pd.DataFrame) -> list[str]:
    """The sharing snapshots a run recorded (every matrix but the gradient ones), in first-seen order."""
    if matrices.empty:
        return []
    return list(dict.fromkeys(name for name in matrices["name"] if name not in GRADIENT_MATRICES))


def snapshot_at(matrices: pd.DataFrame, step: int) -> dict[str, pd.DataFrame]:
    """Each snapshot as recorded at ``step`` (or the latest before it)."""
    found: dict[str, pd.DataFrame] = {}
    part = matrices[~matrices["name"].isin(GRADIENT_MATRICES) & (matrices["step"] <= step)].sort_values("step", kind="stable")
    for name, value in zip(part["name"], part["value"], strict=True):
        found[name] = value
    return found
