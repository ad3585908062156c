"""A chart as a file: any altair/vega-lite chart to PNG or SVG, for slides and papers.

Converted on the server by vl-convert (the Vega renderer compiled into a Python wheel: no browser,
no download at run time). Streamlit's own vega-lite element turns vega-embed's export menu off
(``actions: false``, not configurable from the spec), so the app offers these files with download
buttons under each chart instead (``pages/_charts.py``). The file is drawn as on a projector:
white background and large fonts whatever the page's theme, at a fixed width (a chart on a page
stretches to its column, which a file has not).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Literal

ExportFormat = Literal["png", "svg"]

EXPORT_WIDTH = 720  # pixels, for a chart that stretches on the page
PNG_SCALE = 2  # a 1440-pixel-wide PNG stays sharp on a projector or a printed page
# Fonts a back row can read (vega's defaults are 10-11 px).
EXPORT_CONFIG: dict[str, Any] = {
    "background": "white",
    "font": "sans-serif",
    "title": {"fontSize": 20, "anchor": "start", "offset": 12},
    "axis": {"labelFontSize": 14, "titleFontSize": 16, "titlePadding": 8},
    "legend": {"labelFontSize": 14, "titleFontSize": 15, "symbolSize": 120},
    "header": {"labelFontSize": 14, "titleFontSize": 16},
}


def chart_title(spec: Mapping[str, Any]) -> str:
    """The chart's title as plain text ("" for an untitled chart)."""
    title = spec.get("title", "")
    if isinstance(title, Mapping):
        title = title.get("text", "")
    if isinstance(title, list):
        title = " ".join(str(part) for part in title)
    return str(title)


def file_stem(spec: Mapping[str, Any], fallback: str = "chart") -> str:
    """A file name from the chart's title: "Training loss per task" -> "training-loss-per-task"."""
    slug = re.sub(r"[^a-z0-9]+", "-", chart_title(spec).lower()).strip("-")
    return slug[:60].rstrip("-") or fallback


def export_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec as it is exported: projector fonts and a white background under the chart's own
    config (the chart's choices win), a fixed width where the page would stretch it."""
    out = copy.deepcopy(dict(spec))
    config = copy.deepcopy(EXPORT_CONFIG)
    for key, value in out.get("config", {}).items():
        ours = config.get(key)
        config[key] = {**ours, **value} if isinstance(ours, Mapping) and isinstance(value, Mapping) else value
    out["config"] = config
    if "width" not in out and not any(k in out for k in ("hconcat", "vconcat", "concat", "facet")):
        out["width"] = EXPORT_WIDTH
    return out


def chart_file(spec: Mapping[str, Any], fmt: ExportFormat) -> bytes:
    """The chart as a PNG or SVG file. ``spec`` is a vega-lite dict (``chart.to_dict()``)."""
    import vl_convert as vlc  # a 30 MB native module: loaded on the first export only

    prepared = export_spec(spec)
    if fmt == "svg":
        return vlc.vegalite_to_svg(prepared).encode()
    if fmt == "png":
        return vlc.vegalite_to_png(prepared, scale=PNG_SCALE)
    raise ValueError(f"format must be 'png' or 'svg' (got {fmt!r})")
