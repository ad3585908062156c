"""Figures of sharing: an architecture's diagram and the matrices of sharing it learns.

Pure functions from data to altair charts (no streamlit), like :mod:`mtl_core.figures.run`: the Sharing
page and the Train page draw them, tests check their specs.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import altair as alt
import pandas as pd

from mtl_core.engine.records import GRADIENT_MATRICES

SHARED_GREY = "#7f7f7f"
# Edge kinds of mtl_core.architectures.diagram, drawn so a reader tells them apart without a key.
_EDGE_DASH = {"data": [1, 0], "select": [2, 3], "mix": [1, 0], "penalty": [6, 4], "optional": [3, 3]}
# Matrices whose cells are probabilities or shares (gates, execute probabilities, attention).
_UNIT_INTERVAL = ("gate", "load", "probability", "tree", "attention")
_TEXT_CELLS_UP_TO = 12  # write the value in each cell of matrices up to this many rows and columns


# --- the architecture diagram ---------------------------------------------------------------------
# The diagram is laid out in pixels, here, rather than left to vega: a label can only be kept clear
# of the edges (and of other labels) where its size is known. Each block is a box with its label
# inside; boxes of one depth form a column of one width; edges run in the gaps between columns and,
# where they skip a column, through a gap between that column's boxes (tests/test_sharing_viz.py
# checks that no edge crosses a box other than its own two ends).
LABEL_FONT_PX = 12  # the labels' size where the diagram fits; smaller (down to 9) where it would not
MIN_FONT_PX = 9
DIAGRAM_MAX_WIDTH = 780  # px: the page's main column at 1280x720 with the sidebar open (820) less padding
_MARGIN = 8
_LINE_CHARS = 11  # a label's line is broken at a space beyond this many characters


@dataclass(frozen=True)
class DiagramSizes:
    """Every length of the drawing, in proportion to its labels' font size (px)."""

    font: float

    @property
    def char(self) -> float:  # an upper bound on a character's width (vega's sans-serif: about 0.55 em)
        return self.font * 7 / 12

    @property
    def line(self) -> float:
        return self.font * 1.25

    def text_width(self, line: str) -> float:
        return len(line) * self.char

    @property
    def pad_x(self) -> float:
        return self.font / 2

    @property
    def pad_y(self) -> float:
        return self.font * 5 / 12

    @property
    def row_gap(self) -> float:  # between boxes of a column: where a skipping edge passes
        return self.font * 14 / 12

    @property
    def column_gap(self) -> float:  # between columns: where the edges run
        return self.font * 28 / 12

    @property
    def penalty_step(self) -> float:  # soft sharing's penalties loop out this far apart
        return self.font * 7 / 12


LABEL_INK = "#262730"  # dark text on a light box: legible on the light and the dark theme alike


def label_lines(label: str) -> list[str]:
    """A label broken where it reads naturally ("a: expert 1, level 2" -> "a: expert 1" / "level 2";
    "Stitch 1 (alpha)" -> "Stitch 1" / "(alpha)"), so columns stay narrow."""
    parts = [part for part in re.split(r", | (?=\()|(?<=:) ", label) if part]
    # and a long part at a space ("Shared layer 1" -> "Shared" / "layer 1"): a deep network's
    # nine columns then fit the page at a legible size
    return [line for part in parts for line in textwrap.wrap(part, _LINE_CHARS, break_long_words=False) or [part]]


def diagram_layout(structure: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The drawing's geometry in pixels, separate from its styling. Nodes: each block's box
    (``x0``..``x1``, ``y0``..``y1``, y down) and centre (``x``, ``y``), its label's ``lines``.
    Paths: one row per vertex of each edge's polyline (``edge``, ``order``, ``x``, ``y``), from
    the right side of its source to the left side of its target. ``nodes.attrs``: the figure's
    ``size`` and the ``sizes`` (font) it was laid out with: the largest font up to 12 px at which
    it fits :data:`DIAGRAM_MAX_WIDTH`, so a deep architecture is drawn smaller, not cut off."""
    nodes, paths = _layout(structure, DiagramSizes(LABEL_FONT_PX))
    width = nodes.attrs["size"][0]
    if width > DIAGRAM_MAX_WIDTH:  # every length scales with the font: shrink it in proportion
        font = max(MIN_FONT_PX, math.floor(LABEL_FONT_PX * (DIAGRAM_MAX_WIDTH - 2 * _MARGIN) / (width - 2 * _MARGIN) * 2) / 2)
        nodes, paths = _layout(structure, DiagramSizes(font))
    return nodes, paths


def _layout(structure: Mapping[str, Any], size: DiagramSizes) -> tuple[pd.DataFrame, pd.DataFrame]:
    nodes = pd.DataFrame(structure["nodes"])
    nodes["task"] = nodes["task"].fillna("shared")
    nodes["lines"] = nodes["label"].map(label_lines)
    nodes["text"] = nodes["lines"].map("\n".join)
    edges = pd.DataFrame(structure["edges"])
    edges["task"] = edges["task"].fillna("shared")
    depths = sorted(nodes["depth"].unique())
    depth_of = nodes.set_index("id")["depth"]
    penalties = edges[edges["kind"] == "penalty"]
    loops = penalties["source"].map(depth_of).value_counts()
    # Columns: each as wide as its longest label, a gap after it wide enough for its penalty loops.
    left, right, x = {}, {}, float(_MARGIN)
    for depth in depths:
        widest = max(size.text_width(line) for lines in nodes.loc[nodes["depth"] == depth, "lines"] for line in lines)
        left[depth], right[depth] = x, x + widest + 2 * size.pad_x
        x = right[depth] + max(size.column_gap, size.penalty_step * (int(loops.get(depth, 0)) + 2))
    width = x - max(size.column_gap, size.penalty_step * (int(loops.get(depths[-1], 0)) + 2)) + _MARGIN
    heights = nodes["lines"].map(len) * size.line + 2 * size.pad_y
    column_height = {d: heights[nodes["depth"] == d].sum() + size.row_gap * ((nodes["depth"] == d).sum() - 1)
                     for d in depths}
    height = max(column_height.values()) + 2 * _MARGIN
    for depth in depths:  # each column centred vertically, in the structure's order
        y = (height - column_height[depth]) / 2
        for index in nodes.index[nodes["depth"] == depth]:
            nodes.loc[index, ["x0", "x1", "y0", "y1"]] = [left[depth], right[depth], y, y + heights[index]]
            y += heights[index] + size.row_gap
    nodes["x"] = (nodes["x0"] + nodes["x1"]) / 2
    nodes["y"] = (nodes["y0"] + nodes["y1"]) / 2
    # Vega sets a multi-line text's first line on its y: the block is centred by raising it.
    nodes["text_y"] = nodes["y"] - (nodes["lines"].map(len) - 1) * size.line / 2
    where = nodes.set_index("id")
    rows = []
    penalty_rank: dict[int, int] = {}
    for number, edge in enumerate(edges.itertuples(index=False)):
        source, target = where.loc[edge.source], where.loc[edge.target]
        if edge.kind == "penalty" or source["depth"] == target["depth"]:
            rank = penalty_rank[source["depth"]] = penalty_rank.get(source["depth"], 0) + 1
            out = source["x1"] + size.penalty_step * rank  # loop out into the gap on the column's right
            points = [(source["x1"], source["y"]), (out, source["y"]), (out, target["y"]), (target["x1"], target["y"])]
        else:
            points = [(source["x1"], source["y"]), *_detour(nodes, left, right, source, target),
                      (target["x0"], target["y"])]
        rows += [{"edge": number, "order": order, "x": px, "y": py, "source": edge.source, "target": edge.target,
                  "kind": edge.kind, "task": edge.task} for order, (px, py) in enumerate(points)]
    nodes.attrs["size"] = (float(width), float(height))
    nodes.attrs["sizes"] = size
    return nodes, pd.DataFrame(rows)


def _detour(nodes: pd.DataFrame, left: Mapping, right: Mapping, source: pd.Series,
            target: pd.Series) -> list[tuple[float, float]]:
    """Where an edge skips columns, it crosses each through the gap between two of its boxes
    (or above or below them) nearest the straight line from source to target."""
    points = []
    for depth in sorted(d for d in left if source["depth"] < d < target["depth"]):
        column = nodes[nodes["depth"] == depth].sort_values("y0")
        tops = [0.0, *column["y1"]]
        bottoms = [*column["y0"], float(nodes["y1"].max() + _MARGIN)]
        middle = (left[depth] + right[depth]) / 2
        along = source["y"] + (target["y"] - source["y"]) * (middle - source["x1"]) / (target["x0"] - source["x1"])
        gap = min(((top + bottom) / 2 for top, bottom in zip(tops, bottoms, strict=True)),
                  key=lambda centre: abs(centre - along))
        points += [(left[depth], gap), (right[depth], gap)]
    return points


def diagram_chart(structure: Mapping[str, Any], colors: Mapping[str, str]) -> alt.LayerChart:
    """Left to right, input to outputs: each block a box with its name, outlined in the colour
    of the task it belongs to (grey: built for all tasks), edges coloured by the task whose
    features they carry; dashed edges are a penalty (soft sharing), a gate's reading of the
    input, or a block a task may skip (AdaShare). Drawn at its own size in pixels."""
    nodes, paths = diagram_layout(structure)
    width, height = nodes.attrs["size"]
    sizes: DiagramSizes = nodes.attrs["sizes"]
    nodes = nodes.drop(columns=["lines"])
    kinds = [kind for kind in _EDGE_DASH if kind in set(paths["kind"])]  # the legend lists what is drawn
    domain = ["shared", *colors]
    stroke = alt.Scale(domain=domain, range=[SHARED_GREY, *colors.values()])
    fill = alt.Scale(domain=domain, range=[_tint(c) for c in [SHARED_GREY, *colors.values()]])
    # Identity scales: one unit is one pixel, so the boxes stay as laid out.
    x_scale = alt.Scale(domain=[0, width], range=[0, width], nice=False, zero=False)
    y_scale = alt.Scale(domain=[0, height], range=[0, height], nice=False, zero=False)
    lines = alt.Chart(paths).mark_line(strokeWidth=2, opacity=0.75).encode(
        x=alt.X("x:Q", axis=None, scale=x_scale), y=alt.Y("y:Q", axis=None, scale=y_scale),
        detail="edge:N", order="order:Q",
        color=alt.Color("task:N", scale=stroke, title="Belongs to", legend=alt.Legend(orient="bottom")),
        strokeDash=alt.StrokeDash("kind:N", title="Connection", legend=alt.Legend(orient="bottom"),
                                  scale=alt.Scale(domain=kinds, range=[_EDGE_DASH[k] for k in kinds])),
        tooltip=[alt.Tooltip("source:N", title="From"), alt.Tooltip("target:N", title="To"),
                 alt.Tooltip("kind:N", title="Connection")],
    )
    boxes = alt.Chart(nodes).mark_rect(cornerRadius=4, strokeWidth=1.5).encode(
        x=alt.X("x0:Q", axis=None, scale=x_scale), x2="x1:Q",
        y=alt.Y("y0:Q", axis=None, scale=y_scale), y2="y1:Q",
        stroke=alt.Color("task:N", scale=stroke, legend=None), fill=alt.Color("task:N", scale=fill, legend=None),
        tooltip=[alt.Tooltip("label:N", title="Block"), alt.Tooltip("role:N", title="Kind"),
                 alt.Tooltip("task:N", title="Belongs to")],
    )
    labels = alt.Chart(nodes).mark_text(fontSize=sizes.font, lineBreak="\n", lineHeight=sizes.line,
                                        baseline="middle", color=LABEL_INK).encode(
        x=alt.X("x:Q", axis=None, scale=x_scale), y=alt.Y("text_y:Q", axis=None, scale=y_scale), text="text:N",
        tooltip=[alt.Tooltip("label:N", title="Block"), alt.Tooltip("role:N", title="Kind")],
    )
    # "pad": legends and padding are added around the laid-out plot. Streamlit's default ("fit")
    # squeezed them into the given size and cut off the bottom row of boxes and the legends.
    return alt.layer(lines, boxes, labels).properties(
        width=width, height=height, autosize=alt.AutoSizeParams(type="pad", contains="padding"))


def _tint(color: str, keep: float = 0.22) -> str:
    """The colour mixed with white: a light box behind dark text, whatever the page's theme."""
    red, green, blue = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(255 - (255 - c) * keep):02x}" for c in (red, green, blue))


def is_unit_interval(name: str) -> bool:
    return any(word in name.lower() for word in _UNIT_INTERVAL)


# What a snapshot's rows, columns and cells are, by a word of its name (first match wins): a
# heatmap without them showed numbers a reader had to guess the meaning of.
_MEANINGS = (
    ("expert load", ("", "Expert", "Each expert's share of all the gates' weight, averaged over a batch "
                                   "of validation inputs; the row sums to 1.")),
    ("gate", ("Task", "Expert", "A cell: how much that task's gate weighs the expert, averaged over a "
                                        "batch of validation inputs; each row sums to 1.")),
    ("cross-stitch", ("Task (its next layer)", "Column read", "A cell: how much that task's next layer takes "
                      "from the column's features; learned freely, so a row need not sum to 1.")),
    ("execute probability", ("Task", "Block", "A cell: the probability that the task executes the block "
                                              "(otherwise it skips it).")),
    ("sharing tree", ("Task", "Block", "Tasks with the same number at a block share its features (a task "
                                       "executes a block where its probability is at least 0.5).")),
    ("mean attention", ("Task", "Trunk layer", "A cell: the task's attention mask on the layer's shared features, "
                                               "averaged over a batch of validation inputs (1: it reads them whole).")),
    ("attention map", ("", "", "The task's attention mask over the first validation image, averaged over "
                               "channels (1: the feature is read whole).")),
    ("input", ("", "", "The first validation image, averaged over channels.")),
    ("distance", ("Layer", "Task pair", "A cell: how far apart the two tasks' columns are at the layer, "
                                        "relative to their size (0: identical).")),
)


def snapshot_meaning(name: str) -> tuple[str, str, str]:
    """(row title, column title, caption) of a sharing snapshot; the caption says what a cell means."""
    lowered = name.lower()
    for word, meaning in _MEANINGS:
        if word in lowered:
            if word == "gate" and ("cgc" in lowered or "ple" in lowered):
                return (*meaning[:2], meaning[2] + " Blank: the gate cannot choose that expert.")
            return meaning
    return "", "", ""


def _is_image(labels: list[str]) -> bool:
    """An image map's rows and columns are pixel indices: no axis to label."""
    return all(label.isdigit() for label in labels)


def snapshot_heatmap(frame: pd.DataFrame, name: str, *, height: int | None = None) -> alt.Chart | alt.LayerChart:
    """One learned matrix (rows x columns, e.g. tasks x experts) as a heatmap with its name as title
    and every row and column labelled (see :func:`snapshot_meaning` for the caption that goes with it).
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
    image = _is_image(rows) and _is_image(columns)
    row_title, column_title, _ = snapshot_meaning(name)
    # Vega drops labels that would overlap ("expert 1, expert 3, ..." on an 8-expert gate): every
    # label is kept, and turned when a row of them would not fit level.
    # "expert 1" .. "expert 8" are shown as 1 .. 8 under the title "Expert" (the data keep the names).
    numbered = column_title == "Expert" and all(re.fullmatch(r"expert \d+", c) for c in columns)
    shown = [c.removeprefix("expert ") for c in columns] if numbered else columns
    level = len(shown) * max(len(c) for c in shown) <= 40
    x_axis = None if image else alt.Axis(labelAngle=0 if level else -45, labelOverlap=False, values=columns,
                                         title=column_title or None,
                                         labelExpr="replace(datum.label, 'expert ', '')" if numbered else alt.Undefined)
    y_axis = None if image else alt.Axis(labelOverlap=False, values=rows, title=row_title or None)
    # Streamlit sizes a chart with its axes, labels and legend inside the given size: leave room
    # for them around the cells (and the turned labels), or the cells get squeezed to nothing.
    turned = 0 if level else int(5.5 * max(len(c) for c in shown))
    height = height or min((40 if small else 18) * len(rows), 320) + (100 if small else 50) + turned
    base = alt.Chart(long, height=height).encode(
        # Explicit domains: Streamlit hands vega pandas' string columns in a form whose distinct
        # values vega cannot read back (every cell landed on one band without them).
        x=alt.X("column:N", sort=columns, scale=alt.Scale(domain=columns), axis=x_axis),
        y=alt.Y("row:N", sort=rows, scale=alt.Scale(domain=rows), axis=y_axis),
    )
    heat = base.mark_rect().encode(
        # Small matrices write each value in its cell: no legend to squeeze them.
        color=alt.Color("value:Q", scale=scale, title=None, legend=None if small else alt.Legend()),
        tooltip=[alt.Tooltip("row:N", title=row_title or "Row"), alt.Tooltip("column:N", title=column_title or "Column"),
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
