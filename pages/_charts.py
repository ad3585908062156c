"""Placing charts on a page, and the panel of learned sharing that the Train and Sharing pages share."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from mtl_core import sharing_viz


def draw(where, chart: alt.TopLevelMixin, *, stretch: bool = True) -> None:
    """Place an altair chart. Its spec is taken without altair's schema validation (the specs
    are validated in tests/test_viz.py): that halves the cost of a live chart update, and the
    server shares the CPU with the training worker. Streamlit sends the data as Arrow either way."""
    spec = chart.to_dict(validate=False)
    spec.get("config", {}).pop("view", None)  # altair's default 300 px view size: Streamlit sizes
    where.vega_lite_chart(spec, width="stretch" if stretch else "content")


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
    return True


def draw_plotly(where, figure, *, stretch: bool = True, **kwargs) -> object:
    """Place a plotly figure: every page's plotly charts go through here, so they share one
    toolbar and export set-up. Extra keyword arguments (``key``, ``on_select``...) pass through."""
    return where.plotly_chart(figure, width="stretch" if stretch else "content",
                              config={"displaylogo": False}, **kwargs)
