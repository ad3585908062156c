"""Presentation mode: for a lecturer at a projector — large fonts, no sidebar, the pages in the top
bar, charts with larger labels, and everything reachable from the keyboard.

Switched on by the sidebar's button (or Alt+P), or by opening any page with ``?present=1``; off
by the "Exit presentation" button at the top of every page (or Esc), or ``?present=0``. The mode
lives in ``st.session_state`` (it survives page switches, which drop a page's query string); the
``present`` parameter is taken out of the URL as soon as it is read, because the pages own their
query strings (Train's is its RunConfig, and an unknown key would make it invalid).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages import _url as url

PRESENTING = "presenting"  # the session_state key
URL_PARAM = "present"
ENTER_SHORTCUT = "Alt+P"
EXIT_SHORTCUT = "Esc"
CSS = Path(__file__).resolve().parents[1] / "assets" / "presentation.css"
_OFF = {"0", "false", "off", "no"}

# Chart text on the page while presenting (vega-lite config; the page's theme keeps its colours).
CHART_FONTS = {
    "title": {"fontSize": 20},
    "axis": {"labelFontSize": 15, "titleFontSize": 17},
    "legend": {"labelFontSize": 15, "titleFontSize": 16},
    "text": {"fontSize": 16},
}
PLOTLY_FONT_SIZE = 17
MARK_TEXT_SCALE = 1.35  # text marks with their own size (cell values, diagram labels)
# Charts are taller while presenting: at the larger fonts a y axis title longer than the plot is
# high pushed the chart's title out of the top of its box ("Update norm (log scale)").
HEIGHT_SCALE = 1.4


def presenting() -> bool:
    return bool(st.session_state.get(PRESENTING, False))


def set_presenting(on: bool) -> None:
    st.session_state[PRESENTING] = on


def adopt_url_switch() -> None:
    """Take ``?present=1`` / ``?present=0`` from the URL into the session, and out of the URL."""
    switch = url.take(URL_PARAM)
    if switch is not None:
        set_presenting(switch.strip().lower() not in _OFF)


def navigation_position() -> str:
    """While presenting the sidebar is gone and the page links sit in the top bar."""
    return "top" if presenting() else "sidebar"


def enter_button() -> None:
    """The sidebar's way in."""
    st.button("Presentation mode", key="presentation.enter", icon=":material/slideshow:",
              shortcut=ENTER_SHORTCUT, on_click=set_presenting, args=(True,), width="stretch",
              help="For a projector: large fonts and chart labels, no sidebar (the pages move to "
                   f"the top bar). Leave with Esc or the button at the top. Keys: {ENTER_SHORTCUT} "
                   "enters, Tab / Shift+Tab move between controls, Enter or Space presses. A link "
                   "with ?present=1 opens a page in this mode.")


def exit_bar() -> None:
    """The visible way back, at the top of every page while presenting, and the larger fonts."""
    st.html(CSS)
    st.button("Exit presentation", key="presentation.exit", icon=":material/close_fullscreen:",
              shortcut=EXIT_SHORTCUT, type="tertiary", on_click=set_presenting, args=(False,),
              help="Back to the normal layout with the sidebar (Esc).")


def chart_config(config: dict) -> dict:
    """A vega-lite config with the presentation's larger fonts under the chart's own settings."""
    merged = {key: dict(value) for key, value in CHART_FONTS.items()}
    for key, value in config.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    return merged


def presented_spec(spec: dict) -> dict:
    """A vega-lite spec as drawn while presenting: the larger fonts in its config, text marks
    that set their own size (which a config cannot override) scaled up, and taller charts."""
    return {**_scaled_marks(spec), "config": chart_config(spec.get("config", {}))}


def _scaled_marks(node):
    if isinstance(node, list):
        return [_scaled_marks(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _scaled_marks(value) for key, value in node.items() if key not in ("datasets", "data")}
    out.update({key: node[key] for key in ("datasets", "data") if key in node})  # data as it is
    if isinstance(out.get("height"), int | float):
        out["height"] = round(out["height"] * HEIGHT_SCALE)
    mark = out.get("mark")
    if isinstance(mark, dict) and isinstance(mark.get("fontSize"), int | float):
        out["mark"] = {**mark, "fontSize": round(mark["fontSize"] * MARK_TEXT_SCALE)}
    return out
