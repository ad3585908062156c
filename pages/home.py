"""Home: what multi-task learning is, the survey's map of it, and a six-step tour of the app."""

from __future__ import annotations

import streamlit as st

from mtl_core.config import RunConfig
from mtl_core.figures.taxonomy import ROOT, taxonomy_figure, taxonomy_nodes
from mtl_core.runs.sweep import Grid
from pages._charts import draw_plotly
from pages._entry import through_app

through_app()

# The tour's set-ups: two digits side by side share one trunk (the default demo), then the same
# set-up with a gradient method, then another one to compare with.
FIRST_RUN = RunConfig()
CONFLICT = RunConfig.parse({"suite": "multidigits", "tasks": ["left", "right"], "method": "ew",
                            "steps": 300, "probe_every": 5})
SWITCHED = RunConfig.parse(CONFLICT.model_dump() | {"method": "pcgrad", "method_params": {}})
COMPARED = Grid(CONFLICT, methods=("ew", "pcgrad", "cagrad"), archs=("hps",), seeds=(0, 1))
SHARING = RunConfig.parse({"suite": "multidigits", "tasks": ["left", "right"], "arch": "mmoe",
                           "steps": 300})
# Real data whose losses differ a hundredfold: what loss weighting is for.
SCALES = RunConfig.parse({"suite": "penguins", "method": "uw", "steps": 400})

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
     "The Compare page, set up to train equal weighting, PCGrad and CAGrad on this set-up with two "
     "seeds each: press **Launch** and watch the table of results (Δm %: the average gain, in per cent, "
     "over training each task alone) and the Pareto plot (each run a point, one task per axis) fill in."),
    ("sharing", "See sharing",
     "The Sharing page draws a Multi-gate Mixture-of-Experts: experts shared by both tasks, a "
     "gate per task. Train it to see what each gate learns."),
    ("scales", "Balance real losses",
     "Real penguins: species and sex to classify, body mass (kg) and flipper length (mm) to predict. "
     "Their losses differ a hundredfold; uncertainty weighting learns a weight per task: watch the "
     "Task weights chart give the large flipper loss less weight."),
)

TOUR_OPENS = {  # the buttons' help: where each one goes
    "first": "Opens the Train page with the default demo; nothing trains until you press Train.",
    "conflict": "Opens the Train page with equal weighting and a gradient probe every 5 steps.",
    "switch": "Opens the Train page with PCGrad on the same set-up as step 2.",
    "compare": "Opens the Compare page with a grid of three methods x two seeds on the same set-up; nothing trains until you launch it.",
    "sharing": "Opens the Sharing page on the MMoE architecture (experts and gates).",
    "scales": "Opens the Train page on the Palmer penguins with uncertainty weighting.",
}


def start_step(step: str) -> None:
    if step == "compare":
        st.switch_page("pages/compare.py", query_params=COMPARED.to_query())
    if step == "sharing":
        st.session_state.config = SHARING
        st.session_state["sharing.arch"] = SHARING.arch
        st.switch_page("pages/sharing.py")
    config = {"first": FIRST_RUN, "conflict": CONFLICT, "switch": SWITCHED, "scales": SCALES}[step]
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
            if st.button(title, key=f"home.tour.{key}", width="stretch", help=TOUR_OPENS[key],
                         type="primary" if number == 1 else "secondary"):
                start_step(key)

with map_col:
    st.subheader("The map of the field", anchor=False)
    st.caption("After Crawshaw's survey (2020): architectures decide what the tasks share, "
               "optimisation balances them, task relationship learning finds which tasks belong "
               "together. Blue: methods built here, green: architectures built here, grey: described "
               "only. Click a family to zoom in, the centre to zoom out.")
    draw_plotly(st, taxonomy_figure())

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
