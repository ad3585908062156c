"""MTL Playground: train several tasks in one network and watch them help or hinder each other.

Run: streamlit run app.py. The pages live in pages/; the engine (mtl_core) never imports streamlit.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from mtl_core.runs import settings
from mtl_core.runs.store import StoreError
from pages import _identity as identity
from pages import _presentation as presentation
from pages import _resources as resources

# A local image: a ":material/...:" page icon is fetched from Google's font server, which a
# classroom without internet cannot reach (the icons in the pages are bundled with Streamlit).
st.set_page_config(page_title="MTL Playground", page_icon=str(Path(__file__).with_name("assets") / "icon.png"),
                   layout="wide")
# Settings are checked by `python -m mtl_core serve`; started directly, a bad one stops every page here.
if server_problems := settings.problems():
    st.error(server_problems[0], icon=":material/error:")
    st.stop()
# A store that cannot be used (read-only, deleted while running, locked) says so on every page.
if store_fault := resources.store_problem():
    st.error(store_fault, icon=":material/error:")
    st.stop()

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("pages/gradient_lab.py", title="Gradient lab", icon=":material/call_split:", url_path="gradient_lab"),  # the file's name: see pages/_entry.py
    st.Page("pages/sharing.py", title="Sharing", icon=":material/account_tree:", url_path="sharing"),
    st.Page("pages/affinity.py", title="Task affinity", icon=":material/hub:", url_path="affinity"),
    st.Page("pages/methods.py", title="Methods", icon=":material/menu_book:", url_path="methods"),
    st.Page("pages/runs.py", title="Runs", icon=":material/history:", url_path="runs"),
]
presentation.adopt_url_switch()  # before the page runs: the page owns its query string
page = st.navigation(PAGES, position=presentation.navigation_position())

st.html(Path(__file__).with_name("assets").joinpath("app.css"))
if presentation.presenting():
    presentation.exit_bar()
else:
    with st.sidebar:
        st.markdown("### MTL Playground")
        st.caption("Multi-task learning trains one network on several tasks at once, so that what "
                   "one task learns can help the others — or get in their way.")
        presentation.enter_button()
        identity.lecturer_sidebar()
# Who this browser is (a signed cookie), before any page counts or manages its runs.
identity.adopt_identity()
try:
    page.run()
except StoreError as store_error:  # the store failed between the check and the page's use of it
    st.error(str(store_error), icon=":material/error:")
