"""Sharing a set-up, the same on Train and Compare: the link, config JSON download and upload, and
the command line that re-runs it."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from mtl_core.config import ConfigError, RunConfig
from mtl_core.runs.share import MAX_UPLOAD_BYTES, cli_line, config_from_upload

# Megabytes, Streamlit's unit (also server.maxUploadSize in .streamlit/config.toml): the browser
# refuses a larger file before sending it, and the server refuses what a client sends anyway.
UPLOAD_LIMIT_MB = 1


def share_panel(config: RunConfig, *, key: str, on_upload: Callable[[RunConfig], None],
                command: str | None = None, file_name: str = "mtl-config.json") -> None:
    """An expander with the set-up's config JSON (download), an upload that replaces the set-up
    (validated: a bad file is one message), and the exact CLI line (``command``, default the
    ``run`` line of ``config``). ``key`` must not start with a page's form prefix, so that
    clearing a form does not drop the uploaded file."""
    with st.expander("Share this set-up", icon=":material/share:"):
        st.caption("This page's address (the link in the browser's address bar) reproduces the set-up: "
                   "copy it to share it.")
        st.download_button("Download config JSON", config.to_json(), file_name=file_name,
                           mime="application/json", on_click="ignore", key=f"{key}.download",
                           width="stretch", help="The configuration as JSON: upload it here later, "
                           "or run it with `python -m mtl_core run --config FILE`.")
        uploaded = st.file_uploader("Upload a config JSON", type=["json"], key=f"{key}.upload",
                                    max_upload_size=UPLOAD_LIMIT_MB,
                                    help="A file downloaded from here or from the Runs page; it "
                                    "replaces the set-up. It is checked before anything uses it.")
        if uploaded is not None and st.session_state.get(f"{key}.applied") != uploaded.file_id:
            st.session_state[f"{key}.applied"] = uploaded.file_id
            st.session_state.pop(f"{key}.error", None)
            try:
                if uploaded.size > MAX_UPLOAD_BYTES:  # do not even read it
                    raise ConfigError([f"the file is {uploaded.size // 1024} KiB; a configuration is at "
                                       f"most {MAX_UPLOAD_BYTES // 1024} KiB"])
                new_config = config_from_upload(uploaded.getvalue())
            except ConfigError as error:
                st.session_state[f"{key}.error"] = upload_message(uploaded.name, error)
            else:
                on_upload(new_config)
                st.rerun()
        if uploaded is None:
            st.session_state.pop(f"{key}.error", None)
        st.caption("Re-run it from a terminal:")
        st.code(command or cli_line(config), language="bash", wrap_lines=True)
    # Outside the expander: a rerun may draw the expander closed, and the message must stay in view.
    if st.session_state.get(f"{key}.error"):
        st.error(st.session_state[f"{key}.error"], icon=":material/error:")


def upload_message(name: str, error: ConfigError) -> str:
    return f"{name} was not used: " + "; ".join(error.problems) + "."
