"""Who is this browser: a signed owner id in a cookie, and the lecturer's key.

Streamlit 1.67 has no per-browser identity without an identity provider (``st.login`` needs
OIDC). What it has: ``st.context.cookies``, the cookies the browser sent when its session
connected, and ``st.html(..., unsafe_allow_javascript=True)``, which runs a script in the page.
So a browser that brings no valid ``mtl_owner`` cookie gets a new identity at once (kept in
``st.session_state``, so this session owns what it starts) and a one-line script writes it into
``document.cookie``: the next reload and every new tab connect with it and are the same person.
The token is signed (mtl_core.runs.owners), so editing the cookie makes no one else.

The lecturer types the key into the sidebar (never a URL: links are shared and logged); a match
sets a second signed cookie, bound to the owner id and the key, so a reload stays unlocked.
"""

from __future__ import annotations

import json
import os

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from mtl_core.runs.owners import LECTURER_ENV, SECRET_ENV, Actor, Identities

OWNER_COOKIE = "mtl_owner"
LECTURER_COOKIE = "mtl_lecturer"
COOKIE_MAX_AGE_S = 365 * 24 * 3600  # a school year: the same person all term
_OWNER = "identity.owner"  # session_state: this session's owner id
_LECTURER = "identity.lecturer"  # session_state: True once the key was entered (or its cookie shown)
_COOKIES = "identity.cookies"  # session_state: {name: value} to write into the browser (None: delete)
_KEY_INPUT = "identity.key_input"
_KEY_PROBLEM = "identity.key_problem"
_HIDDEN = "mtl_identity"  # the key of the container that holds the cookie script (never shown)


@st.cache_resource(show_spinner=False)
def _identities(store_path: str | None, secret: str | None, lecturer_key: str | None) -> Identities:
    # Keyed by the settings, so a test that changes them gets identities of its own.
    return Identities.for_store(store_path)


def identities() -> Identities:
    """The server's identities (secret and lecturer key from the environment, see owners.py)."""
    return _identities(os.environ.get("MTL_STORE") or None, os.environ.get(SECRET_ENV) or None,
                       os.environ.get(LECTURER_ENV) or None)


def _cookie(name: str) -> str | None:
    try:
        return st.context.cookies.get(name)
    except Exception:  # no client context (AppTest, a bare script run): no cookies
        return None


def _ensure_identity() -> None:
    """Give this session its owner id: the cookie's, or a new one (to be written into the browser)."""
    if _OWNER in st.session_state:
        return
    ids = identities()
    owner = ids.verify(_cookie(OWNER_COOKIE))
    if owner is None:  # first visit, cookies refused, or a forged/damaged/old-secret token
        token = ids.issue_token()
        owner = ids.verify(token)
        st.session_state.setdefault(_COOKIES, {})[OWNER_COOKIE] = token
    st.session_state[_OWNER] = owner
    st.session_state[_LECTURER] = ids.verify_lecturer(_cookie(LECTURER_COOKIE), owner)


def current_actor() -> Actor:
    """Who this session is: its owner id and whether it holds the lecturer key. Outside a script
    run (no session): nobody, who may manage nothing."""
    if get_script_run_ctx() is None:
        return Actor(owner=None)
    _ensure_identity()
    lecturer = bool(st.session_state.get(_LECTURER)) and identities().has_lecturer
    return Actor(owner=st.session_state[_OWNER], lecturer=lecturer)


def adopt_identity() -> None:
    """Called by app.py before every page: settle this session's identity and write any cookie the
    browser still lacks (an invisible script; it takes no space on the page)."""
    _ensure_identity()
    pending = st.session_state.get(_COOKIES)
    if pending:
        # Hidden by its key: display:none also drops the flex gap. The style travels with the
        # script (a style-only st.html goes to another container, and was not applied in time).
        with st.container(key=_HIDDEN):
            st.html(f"<style>.st-key-{_HIDDEN} {{display: none !important;}}</style>"
                    + _cookie_script(pending), unsafe_allow_javascript=True)


def _cookie_script(cookies: dict[str, str | None]) -> str:
    """A script that writes ``cookies`` (None: delete) for the whole app, SameSite=Lax (not sent
    by other sites' requests), Secure when served over https."""
    lines = []
    for name, value in cookies.items():
        max_age = COOKIE_MAX_AGE_S if value is not None else 0
        # json.dumps: the values are our own tokens (URL-safe base64), quoted all the same.
        pair = json.dumps(f"{name}={value or ''}")
        lines.append(f"document.cookie = {pair} + "
                     f"'; path=/; max-age={max_age}; SameSite=Lax' + secure;")
    return ("<script>(function () { var secure = location.protocol === 'https:' ? '; Secure' : ''; "
            + " ".join(lines) + " })();</script>")


def lecturer_sidebar() -> None:
    """The lecturer's unlock, in the sidebar: a password input while locked, a line and a Lock
    button once unlocked. Nothing at all when the server has no lecturer key."""
    if not identities().has_lecturer:
        return
    if current_actor().lecturer:
        st.caption("Lecturer: you may stop, rename and delete every run.")
        st.button("Lock lecturer mode", key="identity.lock", on_click=_lock,
                  help="Manage only your own runs again, in this browser (the key unlocks it again).")
        return
    st.text_input("Lecturer key", type="password", key=_KEY_INPUT, on_change=_unlock,
                  help="The lecturer may stop, rename and delete every run: type the key the "
                       "server was started with ($MTL_LECTURER_KEY) and press Enter.")
    if st.session_state.get(_KEY_PROBLEM):
        st.caption(st.session_state[_KEY_PROBLEM])


def _unlock() -> None:
    entered = st.session_state.get(_KEY_INPUT, "")
    st.session_state[_KEY_INPUT] = ""  # the key is not kept in the page
    if not entered:
        return
    if not identities().check_lecturer_key(entered):
        st.session_state[_KEY_PROBLEM] = "That is not the lecturer key: check it and press Enter again."
        return
    actor = current_actor()
    assert actor.owner is not None  # a widget callback runs in a session
    st.session_state.pop(_KEY_PROBLEM, None)
    st.session_state[_LECTURER] = True
    st.session_state.setdefault(_COOKIES, {})[LECTURER_COOKIE] = identities().lecturer_token(actor.owner)


def _lock() -> None:
    st.session_state[_LECTURER] = False
    st.session_state.setdefault(_COOKIES, {})[LECTURER_COOKIE] = None
