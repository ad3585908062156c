"""Task affinity: which tasks help which, measured three ways, and the groupings they suggest.

Reads runs with lookahead affinity (TAG) recorded from the store, can start one, trains the
pairwise-transfer study (every pair and the single-task baselines) and the suggested groupings
through the job manager. The science lives in mtl_core.studies.affinity, the figures in mtl_core.figures.affinity.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from mtl_core.config import ConfigError, RunConfig
from mtl_core.figures import affinity as affinity_viz
from mtl_core.figures import run as viz
from mtl_core.runs.store import LIVE, TERMINAL, RunInfo, Store
from mtl_core.studies import affinity, grouping, transfer
from mtl_core.suites import SUITES
from pages import _submit as submit
from pages._charts import draw
from pages._entry import through_app
from pages._polling import POLL_S
from pages._resources import run_store
from pages._widgets import entry_select

through_app()

MATRICES = {
    "tag": ("Lookahead affinity (TAG)", "loss drop of j after a step on i"),
    "cosine": ("Gradient cosine", "cosine"),
    "transfer": ("Pairwise transfer", "gain %"),
}
MATRIX_HELP = {
    "tag": "Z(i→j) = 1 − L_j after a step on task i's gradient alone ÷ L_j before, on the same "
           "batch, averaged over the steps where it was measured (Fifty et al. 2021). Positive: a "
           "step for i also lowers j's loss. The lookahead is the paper's plain gradient step with "
           "the run's learning rate, for Adam runs too.",
    "cosine": "cos(g_i, g_j) of the task gradients on the shared layers, averaged over the "
              "gradient probes: free, but symmetric and first-order only.",
    "transfer": "gain(i→j) = how much better task j's validation metric is when trained beside i "
                "than alone (single-task baseline), in percent (Standley et al. 2020).",
}
DEFAULT_SUITE = "digit_attributes"


# --- finding runs -------------------------------------------------------------------------------

def tag_runs(store: Store) -> list[RunInfo]:
    """Runs that measured (or are measuring) the lookahead affinity, newest first."""
    return [info for info in reversed(store.run_infos())
            if getattr(info.config, "affinity_every", 0) > 0]


def plan_status(store: Store, base: RunConfig) -> tuple[int, int, int]:
    """(done, live, total) runs of the pairwise-transfer plan."""
    plan = transfer.transfer_plan(base)
    done = sum(transfer.find_run(store, c) is not None for c in plan)
    live = sum(transfer.find_run(store, c, statuses=LIVE) is not None for c in plan)
    return done, live, len(plan)


# --- starting runs ------------------------------------------------------------------------------

def start_form() -> None:
    """Start a run that measures the lookahead affinity."""
    with st.expander("Measure the affinity of your tasks: start a TAG run",
                     expanded=st.session_state.get("affinity.run") is None):
        suite_key = entry_select("Task suite", SUITES, key="affinity.suite", value=DEFAULT_SUITE,
                                 help="The data and tasks to measure. Digit attributes has six tasks, "
                                      "some related (class, parity, 5 or more), some not (ink, slant).")
        suite = SUITES[suite_key]
        tasks = st.multiselect("Tasks", suite.task_names, default=list(suite.task_names),
                               key=f"affinity.tasks.{suite_key}",
                               format_func=lambda name: f"{suite.task(name).label} ({name})",
                               help="The tasks to learn together and measure (two or more; up to 8 "
                                    "for the exhaustive grouping search).")
        steps_col, every_col = st.columns(2)
        steps = steps_col.number_input("Steps", min_value=10, max_value=100_000, value=500, step=100,
                                       key="affinity.steps",
                                       help="Training steps of the run (hard sharing, equal weighting, Adam).")
        every = every_col.number_input("Measure every k steps", min_value=1, max_value=10_000, value=10,
                                       key="affinity.every",
                                       help="TAG is measured every k steps (one extra forward pass per "
                                            "task there). Gradient probes run at the same steps, so the "
                                            "task gradients are computed once for both.")
        try:
            config = RunConfig.parse({"suite": suite_key, "tasks": tuple(tasks), "steps": int(steps),
                                      "affinity_every": int(every), "probe_every": int(every),
                                      "eval_every": max(1, int(steps) // 10), "snapshot_every": 0})
            problems = [] if len(tasks) >= 2 else ["choose two or more tasks"]
        except ConfigError as error:
            config, problems = None, error.problems
        if problems:
            st.error("Cannot start: " + "; ".join(problems), icon=":material/error:")
        if st.button("Start the TAG run", type="primary", disabled=bool(problems), key="affinity.start",
                     help="Trains in the background (it queues behind a running run); the matrices "
                          "below fill in as it goes."):
            submit_runs([config], select_first=True)


def submit_runs(configs: list[RunConfig] | Callable[[], list[RunConfig]], *,
                select_first: bool = False) -> list[int]:
    """Queue the runs one after another (those before a refused one keep training); says why one
    was refused, and how many started."""
    ids = submit.submit_runs(configs, failure="Could not start the runs", whole=False) or []
    if ids and select_first:
        st.session_state["affinity.run"] = ids[0]
    if ids:
        st.toast(f"Started {len(ids)} run{'s' * (len(ids) != 1)}.", icon=":material/play_circle:")
    return ids


# --- the matrices -------------------------------------------------------------------------------

def matrices_of(store: Store, info: RunInfo) -> dict[str, pd.DataFrame]:
    found = affinity.run_affinities(store, info.id)
    gains = transfer.transfer_gains(store, info.config)
    if gains.notna().any().any():
        found["transfer"] = gains
    return found


def heatmaps(store: Store, info: RunInfo, found: dict[str, pd.DataFrame], colors: dict[str, str]) -> None:
    columns = st.columns(3)
    for column, key in zip(columns, MATRICES, strict=True):
        title, value_title = MATRICES[key]
        with column:
            if key in found:
                draw(st, affinity_viz.affinity_heatmap(
                    found[key], colors, title=title, value_title=value_title,
                    fixed_domain=(-1.0, 1.0) if key == "cosine" else None), stretch=False)
            else:
                st.markdown(f"**{title}**")
            st.caption(MATRIX_HELP[key])
            if key == "tag":
                st.caption(f"{affinity.measured_steps(store, info.id)} measurements "
                           f"(every {info.config.affinity_every} steps).")
            if key == "cosine" and key not in found:
                st.info("No gradient probes recorded for this run.", icon=":material/info:")
            if key == "transfer":
                transfer_controls(store, info.config)


def transfer_controls(store: Store, base: RunConfig) -> None:
    done, live, total = plan_status(store, base)
    st.caption(f"{done} of {total} runs done" + (f", {live} training or queued" if live else "")
               + f": one single-task (STL) run and {total - 1} pairs, {base.steps:,} steps each, "
               f"{'hard sharing' if base.arch == 'hps' else base.arch}, equal weighting.")
    missing = transfer.missing_transfer_runs(store, base)
    if missing and st.button(f"Train the {len(missing)} missing runs", key="affinity.transfer",
                             help="Trains every pair of the run's tasks and each task alone, with the "
                                  "run's settings, in the background. Runs done before are reused."):
        submit_runs(missing)
        st.rerun()


def agreement(found: dict[str, pd.DataFrame]) -> None:
    if len(found) < 2:
        return
    named = {MATRICES[key][0]: matrix for key, matrix in found.items()}
    table = affinity.rank_agreement(named).round(2)
    st.markdown("##### Do the measures agree?",
                help="Spearman rank correlation between two matrices' task pairs, each pair's two "
                     "directions averaged: 1 when they order the pairs the same way, −1 when "
                     "opposite, 0 when unrelated. Pairs one of them has not measured are left out.")
    st.dataframe(table, width="content")


def groupings_view(store: Store, info: RunInfo, found: dict[str, pd.DataFrame], colors: dict[str, str]) -> None:
    st.subheader("Which tasks should learn together?", anchor=False)
    keys = [key for key in MATRICES if key in found]
    key = st.radio("Affinity to group by", keys, format_func=lambda k: MATRICES[k][0], horizontal=True,
                   key="affinity.by", help="The matrix the network view and the groupings use.")
    matrix = found[key]
    title, value_title = MATRICES[key]
    network, table = st.columns([1, 1.2], gap="large")
    with network:
        draw(st, affinity_viz.network_chart(matrix, colors, title=f"{title}: tasks as a network",
                                            value_title=value_title, size=340), stretch=False)
        st.caption("Edge width: the size of two tasks' mutual affinity (the mean of both directions); "
                   "blue: they help each other, red: they hurt each other.")
    with table:
        groupings = grouping.best_groupings(matrix)
        frame = grouping.groupings_table(groupings).rename(
            columns={"groups": "Groups", "grouping": "Best split", "score": "Score"})
        st.dataframe(frame, hide_index=True, width="stretch",
                     column_config={"Score": st.column_config.NumberColumn(format="%.4g")})
        st.caption("Score: each task's mean affinity received from the other tasks of its group (0 for "
                   "a task alone), averaged over the tasks; the best of every split into that many "
                   "groups (all of them searched). Higher is better. Simplified from TAG, whose search "
                   "may put a task in several groups: here each task is in exactly one.")
        sizes = [len(g.groups) for g in groupings]
        best = max(groupings, key=lambda g: g.score)
        chosen = st.selectbox("Grouping to check", sizes, index=sizes.index(len(best.groups)),
                              key=f"affinity.check.{key}",
                              format_func=lambda n: f"{n} group{'s' * (n != 1)}: {groupings[n - 1].label}",
                              help="Train one run per group, with the run's settings, to see whether "
                                   "the grouping beats learning all tasks together.")
        if st.button("Train this grouping", key="affinity.train_grouping",
                     help="Starts one run per group in the background; compare them on the Runs page."):
            submit_runs(lambda: grouping.group_configs(info.config, groupings[chosen - 1]))


# --- the page -----------------------------------------------------------------------------------

st.header("Task affinity", anchor=False)
st.caption("The survey's third question: which tasks should share a network at all? Measure how "
           "tasks help or hurt each other on your own tasks — by a lookahead step (TAG), by their "
           "gradients' angle, and by training every pair — and get the best split into groups.")
store = run_store()
start_form()
runs = tag_runs(store)
if not runs:
    st.info("No run has measured the task affinity yet: start one above (about a minute on a laptop "
            "for the digit attributes' six tasks).", icon=":material/info:")
    st.stop()

# No status in the label: it is read once per page run and said "(running)" long after the run
# ended; the live part below shows a run's progress while it trains.
labels = {info.id: f"#{info.id} {info.name}" for info in runs}
if st.session_state.get("affinity.run") not in labels:
    st.session_state["affinity.run"] = next(iter(labels))
run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="affinity.run",
                      help="Runs that measured the lookahead affinity, newest first.")
info = store.get_run(run_id)
base = info.config
done, live_plan, total = plan_status(store, base)
live = info.status not in TERMINAL or live_plan > 0


@st.fragment(run_every=POLL_S * 2 if live else None)
def relationships() -> None:
    current = store.get_run(run_id)
    if current is None:
        st.warning(f"Run {run_id} was deleted.")
        return
    colors = {t: c for t, c in viz.task_colors(SUITES[base.suite]).items() if t in base.tasks}
    if current.status not in TERMINAL:
        st.progress(min(current.steps_done / base.steps, 1.0),
                    text=f"Run {run_id} is {current.status}: step {current.steps_done:,} of {base.steps:,}.")
    found = matrices_of(store, current)
    heatmaps(store, current, found, colors)
    agreement(found)
    if found:
        groupings_view(store, current, found, colors)
    now_live = current.status not in TERMINAL or plan_status(store, base)[1] > 0
    if live and not now_live:
        st.rerun()  # everything ended: redraw without polling


relationships()
