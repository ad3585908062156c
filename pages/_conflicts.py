"""Gradient-conflict diagnostics of stored runs, shared by the Train and Compare pages (being built)."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st


def conflict_section(store, run_ids: Sequence[int]) -> None:
    """Draw the conflict diagnostics (cosines over time, conflict shares, norm ratios, per layer)
    of the given stored runs."""
    st.caption("Conflict diagnostics are being built.")
