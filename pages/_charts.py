"""Placing charts on a page, and the panel of learned sharing that the Train and Sharing pages share."""

from __future__ import annotations

from functools import partial

import altair as alt
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.errors import StreamlitDuplicateElementId

from mtl_core.figures import export
from mtl_core.figures import sharing as sharing_viz
from pages._presentation import PLOTLY_FONT_SIZE, presented_spec, presenting


def draw(where, chart: alt.TopLevelMixin, *, stretch: bool = True) -> None:
    """Place an altair chart. Its spec is taken without altair's schema validation (the specs
    are validated in tests/test_viz.py): that halves the cost of a live chart update, and the
    server shares the CPU with the training worker. Streamlit sends the data as Arrow either way."""
    spec = chart.to_dict(validate=False)
    spec.get("config", {}).pop("view", None)  # altair's default 300 px view size: Streamlit sizes
    # Presenting, titles are 20 px: long ones go on two lines (a narrow chart's on shorter ones).
    # In the normal layout a chart gets 28rem at least (assets/app.css), where every title fits.
    shown = (wrapped_title(presented_spec(spec), TITLE_LINE if stretch else NARROW_TITLE_LINE)
             if presenting() else spec)
    # Vega sets the title above the plot's bounds, which an axis label at the plot's top edge
    # ("1" on a [-1, 1] axis) extends: 5 px of padding (vega's default) cut the title's top.
    shown = {"padding": CHART_PADDING, **shown}
    where.vega_lite_chart(shown, width="stretch" if stretch else "content")
    export_buttons(where, spec)


CHART_PADDING = {"top": 12, "bottom": 5, "left": 5, "right": 5}
TITLE_LINE = 36  # characters: a line of a title fits a 28rem chart (see assets/app.css) at 1280x720
NARROW_TITLE_LINE = 20  # presenting, a chart at its own small width (a heatmap of a few tasks)


def title_lines(text: str, width: int = TITLE_LINE) -> list[str]:
    """A title broken at spaces into lines of at most ``width`` characters (a longer word stays whole)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [text]


def wrapped_title(spec: dict, width: int = TITLE_LINE) -> dict:
    """The spec with a long title on several lines: vega draws a title on one line and cuts what
    does not fit with "…" (a list of strings is one line each). The export keeps the one line."""
    title = spec.get("title")
    text = title.get("text") if isinstance(title, dict) else title
    if not isinstance(text, str) or len(text) <= width:
        return spec
    lines = title_lines(text, width)
    return {**spec, "title": {**title, "text": lines} if isinstance(title, dict) else {"text": lines}}


def export_buttons(where, spec: dict) -> None:
    """One click to download the chart as PNG or SVG (large fonts, white background: see
    mtl_core/figures/export.py). The file is converted only when the button is pressed."""
    row = where.container(horizontal=True, horizontal_alignment="right", gap="small")
    stem = export.file_stem(spec)
    for fmt in ("png", "svg"):
        _unique_download(row, label=fmt.upper(), data=partial(export.chart_file, spec, fmt),
                         stem=stem, fmt=fmt, mime="image/png" if fmt == "png" else "image/svg+xml",
                         help=f"Download this chart as {fmt.upper()} (white background, large fonts).")


def _unique_download(where, *, stem: str, fmt: str, **kwargs) -> None:
    # A button's identity is its label, file name and help: two charts of one title on a page
    # (or untitled ones) would clash, so the second gets "-2" in its file name, and so on.
    # Keys are avoided because a polling fragment redraws the same chart every few seconds.
    for n in range(1, 100):
        name = f"{stem}.{fmt}" if n == 1 else f"{stem}-{n}.{fmt}"
        try:
            where.download_button(file_name=name, on_click="ignore", type="tertiary",
                                  icon=":material/download:", **kwargs)
            return
        except StreamlitDuplicateElementId:
            continue


def sharing_panel(matrices: pd.DataFrame, step: int, *, caption: str | None = None) -> bool:
    """The architecture's learned sharing matrices as recorded at ``step``, two per row (an
    architecture with fixed sharing records none: then nothing is drawn and False returned)."""
    snapshots = sharing_viz.snapshot_at(matrices, step)
    if not snapshots:
        return False
    if caption:
        st.caption(caption)
    names = list(snapshots)
    for row in range(0, len(names), 2):
        for column, name in zip(st.columns(2), names[row: row + 2], strict=False):
            draw(column, sharing_viz.snapshot_heatmap(snapshots[name], name))
            caption = sharing_viz.snapshot_meaning(name)[2]
            if caption:
                column.caption(caption)
    return True


def draw_plotly(where, figure, *, stretch: bool = True, **kwargs) -> object:
    """Place a plotly figure: every page's plotly charts go through here, so they share one
    toolbar and export set-up. Extra keyword arguments (``key``, ``on_select``...) pass through;
    a ``config`` is merged over ours.

    Export: the toolbar's camera button downloads the figure as a PNG at twice its size, named
    after its title (plotly.js draws it in the browser; an SVG would need kaleido and a Chrome on
    the server, see mtl_core/figures/export.py for the altair charts)."""
    title = figure.layout.title.text if figure.layout.title and figure.layout.title.text else ""
    config = {"displaylogo": False,
              "toImageButtonOptions": {"format": "png", "scale": 2,
                                       "filename": export.file_stem({"title": title}, "figure")},
              **kwargs.pop("config", {})}
    if presenting():
        figure = go.Figure(figure).update_layout(font_size=PLOTLY_FONT_SIZE)  # a copy: the caller's stays
    return where.plotly_chart(figure, width="stretch" if stretch else "content", config=config, **kwargs)
