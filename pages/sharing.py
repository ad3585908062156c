"""Sharing: how each architecture shares the network between tasks, and what a run learned about it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mtl_core.architectures import ARCHITECTURES
from mtl_core.architectures.diagram import structure
from mtl_core.config import RunConfig
from mtl_core.figures import run as viz
from mtl_core.figures import sharing as sharing_viz
from mtl_core.runs.store import Store
from mtl_core.runs.view import RunView
from mtl_core.suites import SUITES
from pages._charts import draw
from pages._entry import through_app
from pages._resources import run_store
from pages._widgets import entry_select

through_app()

PLAY_EVERY_S = 0.6


def architecture_view(config: RunConfig) -> None:
    """The chosen architecture drawn for the Train page's suite and tasks."""
    arch_key = entry_select("Architecture", ARCHITECTURES, key="sharing.arch", value=config.arch,
                            help="Which architecture to draw. The diagram uses the suite and tasks "
                                 "chosen on the Train page, and each architecture's default settings.")
    arch = ARCHITECTURES[arch_key]
    suite = SUITES[config.suite]
    st.caption(f"*{arch.category}* — {arch.summary}")
    if arch.paper is not None:
        link = f" — [arXiv:{arch.paper.arxiv}]({arch.paper.url})" if arch.paper.arxiv else ""
        st.caption(f"{arch.paper.cite()}{link}")
    if arch.extra.get("simplified"):
        st.info(f"**Simplified here:** {arch.extra['simplified']}", icon=":material/info:")
    drawing = structure(arch_key, config.tasks, input_kind=suite.input_kind)
    # At its own size: the diagram is laid out in pixels so no edge runs through a label.
    draw(st, sharing_viz.diagram_chart(drawing, viz.task_colors(suite)), stretch=False)
    st.caption(f"For {suite.name}, tasks {', '.join(config.tasks)}. Grey blocks are built for all "
               "tasks; a coloured block or edge belongs to that task. Dashed: a penalty between "
               "columns, a gate reading the input, or a block a task may skip.")


@st.cache_data(show_spinner="Building every architecture and timing its forward pass…", max_entries=16)
def profiles(suite: str, tasks: tuple[str, ...]) -> pd.DataFrame:
    from mtl_core.architectures.profile import profile  # imports torch: only when asked

    rows = []
    for arch in ARCHITECTURES:
        measured = profile(arch.key, suite, tasks)
        rows.append({"Architecture": arch.name, "Shared parameters": measured.shared_params,
                     "Task parameters": measured.task_params,
                     "Forward (ms)": round(measured.forward_ms, 2)})
    table = pd.DataFrame(rows)
    table["x hard sharing"] = (table["Forward (ms)"] / table.loc[table["Architecture"] ==
                               ARCHITECTURES["hps"].name, "Forward (ms)"].iloc[0]).round(2)
    return table


def cost_view(config: RunConfig) -> None:
    st.markdown("##### Size and speed")
    if st.button("Measure every architecture", key="sharing.measure",
                 help="Builds each architecture for the Train page's suite and tasks, counts its "
                      "parameters and times one forward pass of a 128-example batch on one CPU thread."):
        st.session_state["sharing.measured"] = True
    if st.session_state.get("sharing.measured"):
        st.dataframe(profiles(config.suite, tuple(config.tasks)), hide_index=True)


def runs_with_sharing(store: Store) -> pd.DataFrame:
    runs = store.list_runs()
    if runs.empty:
        return runs
    learns = [a.key for a in ARCHITECTURES if a.key not in {"hps", "stl"}]
    return runs[runs["arch"].isin(learns)]


def learned_view(store: Store) -> None:
    """A stored run's sharing snapshots with a step slider and a play button."""
    runs = runs_with_sharing(store)
    if runs.empty:
        st.info("No run has learned sharing yet: train one with cross-stitch, soft sharing, MMoE, "
                "CGC, PLE, MTAN or AdaShare on the Train page, and its snapshots appear here.",
                icon=":material/info:")
        return
    # No status in the label: it was read once, and still said "(running)" long after the run ended.
    labels = {int(row.id): f"#{row.id} {row.name}" for row in runs.itertuples()}
    run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="sharing.run",
                          help="Runs whose architecture learns how to share (newest first).")
    snapshots = RunView.read_snapshots(store, run_id).snapshots
    steps = sorted(set(snapshots["step"]))
    if not steps:
        st.info("This run recorded no snapshots yet (snapshot every 0 turns them off).", icon=":material/info:")
        return
    key = f"sharing.step.{run_id}"
    if st.session_state.get(key) not in steps:
        st.session_state[key] = steps[-1]
    play, slider = st.columns([1, 5], vertical_alignment="bottom")
    playing = play.toggle("Play", key=f"sharing.play.{run_id}",
                          help="Step through the snapshots, one every 0.6 s, from the first.")

    @st.fragment(run_every=PLAY_EVERY_S if playing else None)
    def frames() -> None:
        if playing:
            at = steps.index(st.session_state[key])
            st.session_state[key] = steps[(at + 1) % len(steps)]
        step = slider.select_slider("Step", steps, key=key, help="The training step of the snapshot shown.")
        learned_panel(snapshots, step, caption=f"Step {step:,} of {steps[-1]:,}.")

    frames()


def learned_panel(matrices: pd.DataFrame, step: int, *, caption: str) -> None:
    """The run's sharing matrices at ``step``, two per row, each with a line saying what a cell
    means (pages._charts.sharing_panel draws them bare, for the Train page)."""
    snapshots = sharing_viz.snapshot_at(matrices, step)
    st.caption(caption)
    names = list(snapshots)
    for row in range(0, len(names), 2):
        for column, name in zip(st.columns(2), names[row: row + 2], strict=False):
            draw(column, sharing_viz.snapshot_heatmap(snapshots[name], name))
            column.caption(sharing_viz.snapshot_meaning(name)[2])


# --- the page -----------------------------------------------------------------------------------

st.header("Sharing", anchor=False)
st.caption("The survey's first question is *how* tasks share a network: one trunk for all (hard "
           "sharing), a column each with learned mixing or a penalty (soft sharing), experts chosen "
           "by gates, attention, or branches learned per task. Here each is drawn, and the sharing a "
           "run learned is replayed step by step.")
current: RunConfig = st.session_state.get("config") or RunConfig()
# A radio, not tabs: a chart drawn in a hidden tab is sized as if it had no room.
view = st.radio("Show", ["Architectures", "What a run learned"], horizontal=True, key="sharing.view",
                label_visibility="collapsed", help="The architectures' structure, or a run's learned sharing.")
if view == "Architectures":
    architecture_view(current)
    cost_view(current)
else:
    learned_view(run_store())
