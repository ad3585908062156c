"""Gradient lab page (being built)."""

import streamlit as st

st.title("Gradient lab")
st.info("This page is being built.")
