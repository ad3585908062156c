"""What a suite's data look like: example images with every selected task's label, and the class
balance of each classification task (frames from :mod:`mtl_core.suites.examples`).

Sized for a projector: each pixel of an 8x8 digit is drawn 14 px wide, labels are 16 px, and the
charts keep their own width (a grid of images must not be stretched or squeezed to a page).
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
    rows, cols = list(range(height)), list(range(width))
    charts = []
    for example in sorted(pixels["example"].unique()):
        image = pixels[pixels["example"] == example]
        charts.append(
            alt.Chart(image, width=width * PIXEL, height=height * PIXEL,
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
        classes = [int(c) for c in frame["class"]]
        bars = alt.Chart(frame, width=max(26 * len(classes), 150), height=160).mark_bar(color=colors[str(task)]).encode(
            x=alt.X("class:O", scale=alt.Scale(domain=classes), title="Class",
                    axis=alt.Axis(labelAngle=0, labelFontSize=AXIS_FONT_SIZE, titleFontSize=AXIS_FONT_SIZE)),
            y=alt.Y("share:Q", title="Share of training examples",
                    axis=alt.Axis(format="%", labelFontSize=AXIS_FONT_SIZE, titleFontSize=AXIS_FONT_SIZE,
                                  tickCount=4)),
            tooltip=[alt.Tooltip("class:O", title="Class"), alt.Tooltip("count:Q", title="Examples"),
                     alt.Tooltip("share:Q", title="Share", format=".1%")],
        )
        even = alt.Chart(pd.DataFrame({"share": [1 / len(classes)]})).mark_rule(
            strokeDash=[5, 4], color="#777777").encode(y="share:Q")
        charts.append(alt.layer(bars, even).properties(
            title=alt.TitleParams(f"{info.label} ({task})", fontSize=LABEL_FONT_SIZE, anchor="start")))
    # Two tasks a row: three side by side overflow a card at 1280 px.
    return alt.concat(*charts, columns=2, spacing=28).resolve_scale(y="independent")
