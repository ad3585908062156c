"""A page's settings in the URL: read them, and write them back only when they changed.

Train and Compare keep their whole set-up in the query string (and ``run=<id>`` / ``runs=<ids>``,
what they show), so a reload or a shared link reproduces the page; the Gradient lab keeps its toy's
set-up there, and Methods reads which card to open. Such a page takes the URL in when it did not
write it itself (a first load, a reload, a link, an uploaded config) and writes its state back after
each change. ``present`` (presentation mode) never reaches a page: app.py takes it out of the URL
before the page runs (pages/_presentation.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st


def read() -> dict[str, str]:
    """The URL's query string as a mapping (a repeated key: its last value)."""
    return st.query_params.to_dict()


def write(query: Mapping[str, str], *, merge: bool = False) -> None:
    """Make the URL's query string ``query`` (``merge``: ``query`` over the keys already there),
    touching the URL only when that changes it."""
    current = read()
    wanted = {**current, **query} if merge else dict(query)
    if wanted != current:
        st.query_params.from_dict(wanted)


def take(key: str) -> str | None:
    """Remove ``key`` from the URL and return its value (None when it is not there): a switch
    that the app reads once, like ``present``, and that must not stay in a page's query string."""
    if key not in st.query_params:
        return None
    value = st.query_params[key]
    del st.query_params[key]
    return value


def incoming(written_key: str, *, state_key: str) -> dict[str, str] | None:
    """The URL's query string when the page must take it in, else None: None when it is the one
    the page last wrote (``st.session_state[written_key]``, see :func:`sync`), and when it is
    empty while the page already has its state (``st.session_state[state_key]``): back from
    another page, whose link dropped the query string."""
    query = read()
    if query == st.session_state.get(written_key):
        return None
    if not query and state_key in st.session_state:
        return None
    return query


def sync(query: Mapping[str, str], *, written_key: str) -> None:
    """Write the page's state to the URL (when it changed) and remember it as the page's own, so
    that :func:`incoming` does not take it in again."""
    write(query)
    st.session_state[written_key] = dict(query)
