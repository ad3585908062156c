"""Shared fixtures. Keep this small: each fixture here is used by more than one test file."""

from __future__ import annotations

import pytest
import streamlit as st


@pytest.fixture
def mtl_store(tmp_path, monkeypatch):
    """A fresh run store for the test (via $MTL_STORE); the app's cached store and job manager
    are dropped before and after, which shuts the manager's workers down."""
    path = tmp_path / "mtl.db"
    monkeypatch.setenv("MTL_STORE", str(path))
    st.cache_resource.clear()
    yield path
    st.cache_resource.clear()
