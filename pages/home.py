"""Home: what multi-task learning is, the survey's map of it, and a five-step tour of the app."""

from __future__ import annotations

import streamlit as st

from mtl_core.config import RunConfig
from mtl_core.taxonomy import ROOT, taxonomy_figure, taxonomy_nodes
from pages._entry import through_app
from pages._resources import job_manager

through_app()

# The tour's set-ups: two digits side by side share one trunk (the default demo), then the same
# set-up with a gradient method, then another one to compare with.
FIRST_RUN = RunConfig()
CONFLICT = RunConfig.parse({"suite": "multidigits", "tasks": ["left", "right"], "method": "ew",
                            "steps": 300, "probe_every": 5})
SWITCHED = RunConfig.parse(CONFLICT.model_dump() | {"method": "pcgrad", "method_params": {}})
COMPARED = RunConfig.parse(CONFLICT.model_dump() | {"method": "cagrad", "method_params": {}})
SHARING = RunConfig.parse({"suite": "multidigits", "tasks": ["left", "right"], "arch": "mmoe",
                           "steps": 300})

TOUR = (  # (key, title, what it shows)
    ("first", "Train a first run",
     "Two digits side by side, one shared network, the loss of each task added up. Press **Train** "
     "on the page that opens and watch both accuracies rise."),
    ("conflict", "See conflict",
     "The same two tasks with frequent gradient probes: the cosine heatmap shows where the tasks' "
     "gradients on the shared layers point against each other."),
    ("switch", "Switch method",
     "The same set-up with PCGrad, which removes the conflicting part of each task's gradient. "
     "Train it and compare the cosines and accuracies with step 2."),
    ("compare", "Compare",
     "Trains the same set-up with CAGrad straight away; the **Runs** page then lists it next to "
     "your PCGrad run from step 3, to open either again."),
    ("sharing", "See sharing",
     "The Sharing page draws a Multi-gate Mixture-of-Experts: experts shared by both tasks, a "
     "gate per task. Train it to see what each gate learns."),
)


def start_step(step: str) -> None:
    if step == "compare":
        run_id = job_manager().submit(COMPARED, name="Tour: CAGrad")
        st.switch_page("pages/train.py", query_params=COMPARED.to_query() | {"run": str(run_id)})
    if step == "sharing":
        st.session_state.config = SHARING
        st.session_state["sharing.arch"] = SHARING.arch
        st.switch_page("pages/sharing.py")
    config = {"first": FIRST_RUN, "conflict": CONFLICT, "switch": SWITCHED}[step]
    st.switch_page("pages/train.py", query_params=config.to_query())


st.header("Multi-task learning, hands on", anchor=False)
st.markdown(
    "Multi-task learning trains one network on several tasks at once, sharing some of its layers, "
    "so that what one task learns can help the others. The tasks can also get in each other's way: "
    "their losses have different scales and their gradients on the shared layers can point in "
    "opposite directions. The methods here balance the tasks, and the architectures decide what "
    "they share; this playground lets you train them side by side and watch.")

tour_col, map_col = st.columns([1, 2], gap="large")
with tour_col:
    st.subheader("Start here", anchor=False)
    for number, (key, title, text) in enumerate(TOUR, start=1):
        with st.container(border=True):
            st.markdown(f"**{number}. {title}**")
            st.caption(text)
            if st.button(title, key=f"home.tour.{key}", width="stretch",
                         type="primary" if number == 1 else "secondary"):
                start_step(key)

with map_col:
    st.subheader("The map of the field", anchor=False)
    st.caption("After Crawshaw's survey (2020): architectures decide what the tasks share, "
               "optimisation balances them, task relationship learning finds which tasks belong "
               "together. Blue: methods built here, green: architectures built here, grey: described "
               "only. Click a family to zoom in, the centre to zoom out.")
    st.plotly_chart(taxonomy_figure(), width="stretch", config={"displayModeBar": False})

    st.markdown("**Open a card in the catalogue**")
    nodes = taxonomy_nodes()
    labels = {node.id: node.label for node in nodes}
    families = [node for node in nodes if node.kind == "branch" and labels.get(node.parent) != ROOT
                and node.label != ROOT]
    columns = st.columns(3)
    for index, family in enumerate(families):
        with columns[index % 3]:
            st.markdown(f"*{family.label}*")
            for node in nodes:
                if node.parent == family.id:
                    param = "method" if node.kind == "method" else "arch"
                    st.page_link("pages/methods.py", label=node.label, query_params={param: node.key})
    described = [node for node in nodes if node.kind == "described"]
    st.caption("Described only: " + "; ".join(f"**{node.label.removesuffix(' (described only)')}** — "
                                              f"{node.note}" for node in described))
