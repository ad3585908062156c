"""What a suite's data look like: example images with every selected task's label, and the class
balance of each classification task (frames from :mod:`mtl_core.suites.examples`).

Sized for a projector: each image is drawn 112 px high (14 px a pixel for an 8x8 digit, 4 for a
28x28 one), labels are 16 px, and the charts keep their own width (a grid of images must not be
stretched or squeezed to a page).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from mtl_core.figures.run import task_colors
from mtl_core.registry import SuiteInfo

PIXEL = 14  # screen pixels per image pixel
LABEL_FONT_SIZE = 16
AXIS_FONT_SIZE = 14


def example_captions(labels: pd.DataFrame) -> dict[int, list[str]]:
    """Example -> the lines written under it, one per task (``labels`` from
    :func:`mtl_core.suites.examples.example_labels`)."""
    return {int(example): list(group["text"]) for example, group in labels.groupby("example", sort=True)}


def examples_grid(pixels: pd.DataFrame, labels: pd.DataFrame, *, columns: int = 4) -> alt.ConcatChart:
    """The example images in a grid of ``columns``, each with its targets written under it, one
    task a line. Ink is dark on a white tile, on a fixed 0–1 scale, so every image reads alike and
    the tiles stand out on a light or a dark page."""
    captions = example_captions(labels)
    height = int(pixels["row"].max()) + 1
    width = int(pixels["col"].max()) + 1
    # An image is drawn 112 px high whatever its resolution: 14 px a pixel for the 8x8 digits, 4
    # for MNIST's 28x28 (at 14, four of those overflow a card).
    pixel = max(2, round(PIXEL * 8 / height))
    rows, cols = list(range(height)), list(range(width))
    charts = []
    for example in sorted(pixels["example"].unique()):
        image = pixels[pixels["example"] == example]
        charts.append(
            alt.Chart(image, width=width * pixel, height=height * pixel,
                      title=alt.TitleParams(captions.get(int(example), [f"example {example + 1}"]),
                                            orient="bottom", fontSize=LABEL_FONT_SIZE, fontWeight="normal",
                                            offset=6))
            .mark_rect()
            .encode(
                # Explicit domains: Streamlit hands vega the columns in a form whose distinct
                # values it cannot always read back (see figures.sharing.snapshot_heatmap).
                x=alt.X("col:O", scale=alt.Scale(domain=cols), axis=None),
                y=alt.Y("row:O", scale=alt.Scale(domain=rows), axis=None),
                color=alt.Color("intensity:Q", scale=alt.Scale(domain=[0, 1], scheme="greys"), legend=None),
                tooltip=[alt.Tooltip("row:O", title="Row"), alt.Tooltip("col:O", title="Column"),
                         alt.Tooltip("intensity:Q", title="Ink", format=".2f")],
            )
        )
    return (alt.concat(*charts, columns=columns, spacing=18)
            .configure_view(stroke="#999999", strokeWidth=1)
            .properties(title=alt.TitleParams("Examples and their targets",
                                              fontSize=LABEL_FONT_SIZE + 2, anchor="start")))


def class_balance_chart(balance: pd.DataFrame, suite: SuiteInfo) -> alt.ConcatChart:
    """One bar chart per classification task, two a row: the share of training examples in each class, in
    the task's colour, with a dashed rule at a perfectly balanced share (1 / classes)."""
    colors = task_colors(suite)
    charts = []
    for task, frame in balance.groupby("task", sort=False):
        info = suite.task(str(task))
        # Classes by name where the task names them (penguins' species), else by index.
        frame = frame.assign(label=[info.classes[int(c)] if int(c) < len(info.classes) else str(int(c))
                                    for c in frame["class"]])
        classes = list(frame["label"])
        slot = 26 if not info.classes else max(26, 8 * max(len(name) for name in classes))
        bars = alt.Chart(frame, width=max(slot * len(classes), 150), height=160).mark_bar(color=colors[str(task)]).encode(
            x=alt.X("label:N", scale=alt.Scale(domain=classes), sort=classes, title="Class",
                    axis=alt.Axis(labelAngle=-30 if info.classes else 0, labelFontSize=AXIS_FONT_SIZE,
                                  titleFontSize=AXIS_FONT_SIZE, labelLimit=120)),
            y=alt.Y("share:Q", title="Share of training examples",
                    axis=alt.Axis(format="%", labelFontSize=AXIS_FONT_SIZE, titleFontSize=AXIS_FONT_SIZE,
                                  tickCount=4)),
            tooltip=[alt.Tooltip("label:N", title="Class"), alt.Tooltip("count:Q", title="Examples"),
                     alt.Tooltip("share:Q", title="Share", format=".1%")],
        )
        even = alt.Chart(pd.DataFrame({"share": [1 / len(classes)]})).mark_rule(
            strokeDash=[5, 4], color="#777777").encode(y="share:Q")
        charts.append(alt.layer(bars, even).properties(
            title=alt.TitleParams(f"{info.label} ({task})", fontSize=LABEL_FONT_SIZE, anchor="start")))
    # Two tasks a row: three side by side overflow a card at 1280 px.
    return alt.concat(*charts, columns=2, spacing=28).resolve_scale(y="independent")


def association_heatmap(association: pd.DataFrame, suite: SuiteInfo) -> alt.LayerChart:
    """The tasks' targets' association (:func:`mtl_core.suites.examples.label_association`) as a
    square grid on a fixed 0–1 scale, each cell with its value written in it and its measure in
    the tooltip: 0 is white (independent), 1 the darkest (one target determines the other).

    The axes name the tasks by their short names: Streamlit fits a chart's axes and legend inside
    its width, and long labels ("Flipper length (flipper_length)") left no room for the cells."""
    order = list(dict.fromkeys(association["task_a"]))
    frame = association.assign(row_label=association["task_a"].map(lambda t: suite.task(t).label),
                               col_label=association["task_b"].map(lambda t: suite.task(t).label))
    axis = {"labelFontSize": AXIS_FONT_SIZE, "labelLimit": 140, "title": None}
    base = alt.Chart(frame).encode(
        x=alt.X("task_b:N", sort=order, scale=alt.Scale(domain=order),
                axis=alt.Axis(labelAngle=-40, labelOverlap=False, **axis)),
        y=alt.Y("task_a:N", sort=order, scale=alt.Scale(domain=order), axis=alt.Axis(**axis)),
    )
    cells = base.mark_rect(stroke="#999999", strokeWidth=0.5).encode(
        color=alt.Color("value:Q", scale=alt.Scale(domain=[0, 1], scheme="blues"),
                        legend=alt.Legend(title="Association", titleFontSize=AXIS_FONT_SIZE,
                                          labelFontSize=AXIS_FONT_SIZE, format=".1f")),
        tooltip=[alt.Tooltip("row_label:N", title="Task"), alt.Tooltip("col_label:N", title="With"),
                 alt.Tooltip("measure:N", title="Measure"), alt.Tooltip("signed:Q", title="Value", format=".2f")],
    )
    # Dark text on light cells, white on dark ones: readable on a projector whatever the value.
    text = base.mark_text(fontSize=LABEL_FONT_SIZE - 2).encode(
        text=alt.Text("value:Q", format=".2f"),
        color=alt.condition("datum.value > 0.6", alt.value("white"), alt.value("#222222")),
    )
    # Room for the cells (70 px a task) plus the labels and the legend beside them.
    side = 70 * len(order)
    return alt.layer(cells, text).properties(
        width=side + 260, height=side,
        title=alt.TitleParams("How strongly the tasks' targets go together", fontSize=LABEL_FONT_SIZE,
                              anchor="start"))
