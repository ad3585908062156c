"""Every page goes through app.py, even when a fresh server's first visitor opens it by its URL.

Streamlit treats an app with a ``pages/`` folder as a legacy multipage app until ``st.navigation``
has run once in the process: a first request for ``/runs`` would run ``pages/runs.py`` on its own
(no page config, no shared sidebar, the helper modules listed as pages). Then this runs app.py,
whose navigation takes over for the whole process and draws the page the URL names.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

APP = Path(__file__).resolve().parents[1] / "app.py"


def through_app() -> None:
    if PagesManager.uses_pages_directory:  # st.navigation has not run yet in this process
        exec(compile(APP.read_text(), str(APP), "exec"), {"__file__": str(APP), "__name__": "__main__"})
        st.stop()
