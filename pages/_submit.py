"""Starting runs from a page: submit to the app's job manager for this session, or say why not.

The job manager refuses a submission that goes over the session's caps (LimitError, one sentence
that says what to do, mtl_core.runs.limits); a set-up whose runs cannot be built is a ConfigError.
Either is the person's to fix: the page shows the sentence and carries on. Anything else (the
store's disk full, the manager shut down) is the server's problem and is not caught here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from mtl_core.config import ConfigError, RunConfig
from mtl_core.runs.limits import LimitError
from pages._resources import job_manager, session_owner

REFUSED = (LimitError, ConfigError)  # what a person can fix: shown as one sentence


def submit_run(config: RunConfig, *, failure: str = "Could not start the run", name: str | None = None,
               icon: str | None = None) -> int | None:
    """Queue one run for this session; its id, or None (and ``failure: <why>`` shown) if refused."""
    try:
        return job_manager().submit(config, name=name, owner=session_owner())
    except REFUSED as error:
        st.error(f"{failure}: {error}", icon=icon)
        return None


def submit_runs(configs: Sequence[RunConfig] | Callable[[], Sequence[RunConfig]], *,
                failure: str = "Could not start the runs", icon: str | None = None,
                whole: bool = True) -> list[int] | None:
    """Queue several runs for this session; ``configs`` may be a function that builds them (its
    ConfigError is refused like the caps'). ``whole`` (a grid): all of them or none. Otherwise one
    after another, until one is refused. Returns the ids queued, or None (and ``failure: <why>``
    shown) when refused before any was queued; with ``whole=False`` the ids queued before a refusal
    come back with the message shown."""
    ids: list[int] = []
    try:
        chosen = list(configs() if callable(configs) else configs)
        if whole:
            ids = job_manager().submit_all(chosen, owner=session_owner())
        else:
            for config in chosen:
                ids.append(job_manager().submit(config, owner=session_owner()))
    except REFUSED as error:
        st.error(f"{failure}: {error}", icon=icon)
        return ids or None
    return ids
