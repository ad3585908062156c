"""Shared fixtures. Keep this small: each fixture here is used by more than one test file."""

from __future__ import annotations

import functools

import pytest
import streamlit as st

from benchmarks.served_app import served_app


@pytest.fixture(scope="session", autouse=True)
def components_scanned_once():
    """Every AppTest scans the installed packages for Streamlit components (importlib metadata of
    ~260 distributions: 0.55 s each time, minutes over the suite); they do not change while the
    tests run, so the first scan's answer is kept."""
    from streamlit.components.v2 import manifest_scanner

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(manifest_scanner, "scan_component_manifests",
                      functools.cache(manifest_scanner.scan_component_manifests))
        yield


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


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """The app served (``python -m mtl_core serve``) on a free port with its own store, one for all
    the browser tests (each start costs the server's and a warm worker's imports); yields (url,
    store path). Tests find their own runs by id: the store holds the other tests' runs too."""
    store_path = tmp_path_factory.mktemp("store") / "mtl.db"
    try:
        with served_app(store_path, tmp_path_factory.mktemp("log") / "streamlit.log") as url:
            yield url, store_path
    except RuntimeError as error:
        pytest.fail(str(error))
