"""Shared fixtures. Keep this small: each fixture here is used by more than one test file."""

from __future__ import annotations

import pytest
import streamlit as st

from benchmarks.served_app import served_app


@pytest.fixture
def mtl_store(tmp_path, monkeypatch):
    """A fresh run store for the test (via $MTL_STORE); the app's cached store and job manager
    are dropped before and after, which shuts the manager's workers down."""
    path = tmp_path / "mtl.db"
    monkeypatch.setenv("MTL_STORE", str(path))
    st.cache_resource.clear()
    yield path
    st.cache_resource.clear()


@pytest.fixture
def store_path(tmp_path, monkeypatch):
    """A run store path for a command-line test (via $MTL_STORE); nothing is created yet."""
    path = tmp_path / "mtl.db"
    monkeypatch.setenv("MTL_STORE", str(path))
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app served (``streamlit run app.py``) on a free port with its own store, for a browser
    test module; yields (url, store path)."""
    store_path = tmp_path_factory.mktemp("store") / "mtl.db"
    try:
        with served_app(store_path, tmp_path_factory.mktemp("log") / "streamlit.log") as url:
            yield url, store_path
    except RuntimeError as error:
        pytest.fail(str(error))
