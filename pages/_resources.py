"""The app's long-lived objects: the run store it reads and the job manager that trains.

Both are held with ``st.cache_resource`` (one per server process), keyed by the store path so that
a test's ``MTL_STORE`` gets its own. The server never trains: the job manager runs each training in
a worker process, which also keeps torch's import (1.5 s) out of page start.
"""

from __future__ import annotations

import os

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from mtl_core.runs.jobs import JobManager
from mtl_core.runs.store import Store


def store_path() -> str | None:
    """$MTL_STORE, or None for the store's default (./runs/mtl.db)."""
    return os.environ.get("MTL_STORE") or None


@st.cache_resource(show_spinner=False)
def _store(path: str | None) -> Store:
    return Store(path)


@st.cache_resource(show_spinner=False, on_release=lambda manager: manager.shutdown())
def _job_manager(path: str | None) -> JobManager:
    return JobManager(store_path=path)


def run_store() -> Store:
    return _store(store_path())


def job_manager() -> JobManager:
    return _job_manager(store_path())


def session_owner() -> str | None:
    """This browser session's id: the owner the job manager counts a session's runs by (its caps,
    :mod:`mtl_core.runs.limits`). None outside a script run (no session, no caps)."""
    context = get_script_run_ctx()
    return context.session_id if context is not None else None
