"""The app's long-lived objects: the run store it reads and the job manager that trains.

Both are held with ``st.cache_resource`` (one per server process), keyed by the store path so that
a test's ``MTL_STORE`` gets its own. The server never trains: the job manager runs each training in
a worker process, which also keeps torch's import (1.5 s) out of page start.

A store that cannot be used — read-only, deleted or replaced while the app runs, locked past the
store's wait, no store at all — stops the page with the store's one sentence (no traceback): the
getters below check it on every call (a stat), and app.py asks :func:`store_problem` before any page.
"""

from __future__ import annotations

import os
from typing import NoReturn

import streamlit as st

from mtl_core.runs.estimator import estimate_elsewhere
from mtl_core.runs.jobs import JobManager
from mtl_core.runs.store import Store, StoreError
from pages._identity import current_actor


def store_path() -> str | None:
    """$MTL_STORE, or None for the store's default (./runs/mtl.db)."""
    return os.environ.get("MTL_STORE") or None


@st.cache_resource(show_spinner=False)
def _store(path: str | None) -> Store:
    return Store(path)


@st.cache_resource(show_spinner=False, on_release=lambda manager: manager.shutdown())
def _job_manager(path: str | None) -> JobManager:
    # A run's cost is estimated before it is queued, in a process beside the server's (its trace
    # would hold the interpreter every page needs): started now, warm by the first Train.
    estimate_elsewhere()
    return JobManager(store_path=path)


def run_store() -> Store:
    """The app's store; a store that cannot be used stops the page with its sentence."""
    try:
        store = _store(store_path())
        store.check()
    except StoreError as error:
        _stop_for(error)
    return store


def job_manager() -> JobManager:
    """The app's job manager; a store that cannot be used stops the page with its sentence."""
    run_store()  # its check first: a cached manager would not notice a deleted store
    try:
        return _job_manager(store_path())
    except StoreError as error:
        _stop_for(error)


def store_problem() -> str | None:
    """The one sentence that says why the store cannot be used now, or None when it can."""
    try:
        _store(store_path()).check()
    except StoreError as error:
        return str(error)
    return None


def _stop_for(error: StoreError) -> NoReturn:
    st.error(str(error), icon=":material/error:")
    st.stop()


def session_owner() -> str | None:
    """This browser's owner id (its signed cookie, pages/_identity.py): whom its runs belong to and
    whom the job manager counts them against (caps, :mod:`mtl_core.runs.limits`) — the same across
    reloads and tabs, unlike the session id. None outside a script run (no session, no caps)."""
    return current_actor().owner
