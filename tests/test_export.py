"""Exporting a chart: altair charts become real PNG and SVG files (vl-convert, no browser) with the
chart's title and axis titles in them; the pages offer them under every chart; plotly figures get
a PNG button in their toolbar."""

from __future__ import annotations

import json
import struct

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from mtl_core.figures import export
from mtl_core.figures import run as viz

APP = "../app.py"


def loss_chart():
    df = pd.DataFrame({"step": [1, 2, 3] * 2, "task": ["left"] * 3 + ["right"] * 3,
                       "metric": "loss", "value": [1.0, 0.5, 0.2, 2.0, 1.0, 0.6]})
    return viz.loss_chart(df, viz.task_colors(["left", "right"]), x_max=3)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


def test_a_chart_exports_as_an_svg_with_its_titles():
    svg = export.chart_file(loss_chart().to_dict(), "svg").decode()
    assert svg.startswith("<svg")
    for text in ("Training loss per task", viz.STEP_TITLE, "Loss (log scale)", "left", "right"):
        assert text in svg, text
    assert 'font-size="20px"' in svg  # the projector-sized title, not vega's 13 px


def test_a_chart_exports_as_a_png_at_twice_the_export_width():
    width, height = png_size(export.chart_file(loss_chart().to_dict(), "png"))
    # the plot is EXPORT_WIDTH wide; axes, legend and padding add to it
    assert export.EXPORT_WIDTH * export.PNG_SCALE <= width <= (export.EXPORT_WIDTH + 300) * export.PNG_SCALE
    assert height > 250 * export.PNG_SCALE


def test_the_export_keeps_the_charts_own_settings_and_sizes():
    spec = loss_chart().to_dict()
    spec["config"] = {"axis": {"labelFontSize": 9}, "title": {"color": "red"}}
    out = export.export_spec(spec)
    assert out["config"]["axis"] == {**export.EXPORT_CONFIG["axis"], "labelFontSize": 9}
    assert out["config"]["title"]["color"] == "red" and out["config"]["title"]["fontSize"] == 20
    assert out["width"] == export.EXPORT_WIDTH
    assert export.export_spec({**spec, "width": 280})["width"] == 280  # a fixed-size chart stays
    assert spec["config"]["axis"] == {"labelFontSize": 9} and "width" not in spec  # the caller's is untouched
    with pytest.raises(ValueError, match="png' or 'svg"):
        export.chart_file(spec, "pdf")


def test_file_names_come_from_the_title():
    assert export.file_stem({"title": "Gradient cosine per task pair (below 0: conflict)"}) == \
        "gradient-cosine-per-task-pair-below-0-conflict"
    assert export.file_stem({"title": {"text": "MMoE gate, layer 1"}}) == "mmoe-gate-layer-1"
    assert export.file_stem({}) == "chart"


def test_every_chart_on_a_page_has_png_and_svg_buttons_and_plotly_its_toolbar_png(mtl_store):
    at = AppTest.from_file(APP, default_timeout=60).run()  # Home: the map (plotly)
    assert not at.exception
    (treemap,) = at.get("plotly_chart")
    config = json.loads(treemap.proto.config)
    assert config["toImageButtonOptions"]["format"] == "png"
    assert config["toImageButtonOptions"]["scale"] == 2
    assert config.get("displayModeBar", True) is not False

    at.switch_page("pages/sharing.py").run()  # the architecture diagram (altair)
    assert not at.exception
    charts = at.get("vega_lite_chart") or at.get("arrow_vega_lite_chart")
    buttons = [node.proto for node in at.get("download_button")]
    assert len(charts) == 1
    assert [b.label for b in buttons] == ["PNG", "SVG"] and all(b.help for b in buttons)
