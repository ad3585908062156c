"""Task affinity page (being built)."""

import streamlit as st

st.title("Task affinity")
st.info("This page is being built.")
