"""Compare: launch a grid (methods x architectures x seeds) on one set-up or pick stored runs, and
see which method wins, with honest error bars: curves with mean +/- std bands over seeds, a results
table (delta-m % against STL baselines, mean rank, time per step), the Pareto front and its
hypervolume.

The URL holds the grid's set-up and ``runs=<ids>``, the runs compared: a reload or a shared link
shows the same comparison, and re-attaches to a grid that is still training.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import ConfigError, RunConfig
from mtl_core.figures import compare as compare_viz
from mtl_core.methods import METHODS
from mtl_core.runs import sweep
from mtl_core.runs.baselines import BASELINE_KEY_TEXT, missing_baselines
from mtl_core.runs.owners import OwnershipError
from mtl_core.runs.share import sweep_line
from mtl_core.runs.store import LIVE, MAX_RUN_ID, Store
from mtl_core.suites import SUITES
from pages import _url as url
from pages._charts import draw, draw_plotly
from pages._conflicts import conflict_section
from pages._download import data_ready
from pages._entry import through_app
from pages._identity import current_actor
from pages._polling import POLL_S
from pages._resources import job_manager, run_store
from pages._share import share_panel
from pages._submit import submit_runs
from pages._widgets import seed_widget

through_app()

PREFIX = "compare."
WRITTEN = "compare_query"  # session_state: the query string this page last wrote
DEFAULT_METHODS = ("ew", "pcgrad")


# --- the URL ---------------------------------------------------------------------------------------

def adopt_url() -> list[str]:
    """Take the grid set-up and the compared runs from the URL when this page did not write it."""
    query = url.incoming(WRITTEN, state_key="compare_grid")
    if query is None:
        return []  # this page's own, or back from another page: keep what was shown
    problems: list[str] = []
    runs = parse_run_ids(query.pop("runs", ""))
    grid = None
    if query:
        try:
            grid = sweep.Grid.from_query(with_grid_defaults(query))
        except ConfigError as error:
            problems.append("The link's set-up is not valid, so the defaults are shown: "
                            + "; ".join(error.problems) + ".")
    if grid is None and runs:
        grid = sweep.grid_of_runs(run_store(), runs)
    if grid is None:
        base = st.session_state.get("config") or RunConfig()  # the Train page's set-up, if any
        grid = sweep.make_grid(base, DEFAULT_METHODS, (base.arch,), sweep.DEFAULT_SEEDS)
    st.session_state.compare_grid = grid
    st.session_state.compare_runs = runs
    for key in [k for k in st.session_state if str(k).startswith(PREFIX)]:
        del st.session_state[key]
    return problems


def with_grid_defaults(query: dict[str, str]) -> dict[str, str]:
    """A set-up without a grid (a link from the Train page) is compared with equal weighting, the
    yardstick, over three seeds; its own method and architecture are kept."""
    method = query.get("method", "ew")
    methods = list(dict.fromkeys(["ew", method])) if method in METHODS else ["ew"]
    if len(methods) == 1:
        methods.append(DEFAULT_METHODS[1])
    return {"grid.methods": ",".join(methods), "grid.seeds": ",".join(map(str, sweep.DEFAULT_SEEDS)), **query}


def grid_query(grid: sweep.Grid, runs: list[int]) -> dict[str, str]:
    return grid.to_query() | ({"runs": ",".join(map(str, runs))} if runs else {})


def sync_url(grid: sweep.Grid, runs: list[int]) -> None:
    url.sync(grid_query(grid, runs), written_key=WRITTEN)


def parse_run_ids(text: str) -> list[int]:
    ids = []
    for part in str(text).split(","):
        part = part.strip()
        if part.isdigit() and int(part) <= MAX_RUN_ID:  # a larger id names no run (nor fits SQLite)
            ids.append(int(part))
    return list(dict.fromkeys(ids))


def show(runs: list[int], grid: sweep.Grid | None = None) -> None:
    """Compare ``runs`` from now on (and the grid set-up, if given): the URL follows."""
    st.session_state.compare_runs = runs
    if grid is not None:
        st.session_state.compare_grid = grid


# --- choosing what to compare ---------------------------------------------------------------------

def grid_form(store: Store, grid: sweep.Grid) -> sweep.Grid:
    """The grid's set-up: suite, tasks, steps, methods, architectures, seeds; returns the grid the
    widgets describe (or the last valid one, with the problems shown)."""
    base = grid.base
    setup, choices = st.columns([1, 1.4], gap="large")
    with setup:
        # A person's own table (from Train's "Compare methods on this set-up") is offered beside the
        # built-in suites: it is not listed in the registry.
        built_in = SUITES.keys()
        offered = [*built_in, *([base.suite] if base.suite not in built_in else [])]
        suite_key = st.selectbox("Task suite", offered, key=seed_widget(f"{PREFIX}suite", base.suite),
                                 format_func=lambda k: SUITES[k].name,
                                 help="The data and tasks every run of the grid learns.")
        suite = SUITES[suite_key]
        tasks = st.multiselect("Tasks", suite.task_names,
                               key=seed_widget(f"{PREFIX}tasks.{suite_key}",
                                               list(base.tasks) if suite_key == base.suite else list(suite.default_tasks)),
                               help="The tasks learned together; two give a Pareto plot, more a "
                                    "parallel-coordinates view.")
        data_ready(suite_key, base.suite_params if suite_key == base.suite else {}, key=f"{PREFIX}download")
        steps = st.number_input("Steps per run", min_value=1, max_value=1_000_000, step=100,
                                key=seed_widget(f"{PREFIX}steps", base.steps),
                                help="Optimiser steps of every run (and of the STL baselines).")
    with choices:
        methods = st.multiselect("Methods", METHODS.keys(), key=seed_widget(f"{PREFIX}methods", list(grid.methods)),
                                 format_func=lambda k: METHODS[k].name,
                                 help="Task-balancing methods to compare, each with its paper's defaults "
                                      "(the set-up's own method keeps its knobs).")
        archs = st.multiselect("Architectures", [a.key for a in ARCHITECTURES if a.key != "stl"],
                               key=seed_widget(f"{PREFIX}archs", [a for a in grid.archs if a != "stl"] or ["hps"]),
                               format_func=lambda k: ARCHITECTURES[k].name,
                               help="Sharing architectures; the single-task baselines are trained on their own.")
        seeds = st.text_input("Seeds", key=seed_widget(f"{PREFIX}seeds", ",".join(map(str, grid.seeds))),
                              help="Comma-separated seeds, e.g. 0,1,2: each method runs once per seed, and "
                                   "the table shows mean ± std over them and whether each difference to "
                                   "equal weighting is more than seed noise (at least 3 seeds to tell).")
    source = "the Train page's set-up" if "config" in st.session_state else "the link or the defaults"
    st.caption(f"Other settings (learning rate, batch size, optimiser, knobs) come from {source}; "
               "upload a config JSON below to change them.")
    data = base.model_dump()
    same_suite = suite_key == base.suite
    data.update(suite=suite_key, tasks=tuple(tasks), steps=int(steps),
                suite_params=base.suite_params if same_suite else {})
    try:
        if not tasks:
            raise ConfigError(["tasks: choose at least one task"])
        chosen = sweep.make_grid(RunConfig.parse(data), methods, archs, seeds)
    except ConfigError as error:
        st.error("This grid cannot run:\n" + "\n".join(f"- {p}" for p in error.problems), icon=":material/error:")
        return grid
    if len(chosen.seeds) < len(sweep.DEFAULT_SEEDS):
        n = len(chosen.seeds)
        st.caption(f":orange[With {n} seed{'s' * (n != 1)}, seed noise can hide or fake a difference: "
                   f"{len(sweep.DEFAULT_SEEDS)} or more seeds let the table tell them apart.]")
    return chosen


def launch(store: Store, grid: sweep.Grid, *, baselines: bool) -> list[int] | None:
    """Queue the grid (the missing STL baselines first) with the app's job manager, the whole grid
    or none of it; returns the ids of the runs to compare (the grid's and its baselines), or None
    when it was refused (the page says why)."""
    def configs() -> list[RunConfig]:
        runs = grid.configs()
        return [*(missing_baselines(store, runs) if baselines else []), *runs]

    return submit_runs(configs, failure="Could not start the grid", icon=":material/error:")


def pick_runs(store: Store, current: list[int]) -> None:
    runs = store.list_runs()
    if runs.empty:
        st.info("No stored runs yet: launch a grid, or train on the Train page.")
        return
    names = dict(zip(runs["id"].astype(int), runs["name"], strict=True))
    statuses = dict(zip(runs["id"].astype(int), runs["status"], strict=True))
    chosen = st.multiselect("Runs", list(names), default=[r for r in current if r in names], key=f"{PREFIX}picked",
                            format_func=lambda i: f"{i} · {names[i]} · {statuses[i]}",
                            help="Runs of one set-up (suite and tasks); their seeds are pooled per "
                                 "method and architecture.")
    if st.button("Compare these runs", key=f"{PREFIX}compare", disabled=not chosen,
                 help="Show the chosen runs below: curves, results table, Pareto plot and conflicts."):
        show(list(chosen))
        st.rerun()


# --- the comparison --------------------------------------------------------------------------------

def one_setup(summaries: pd.DataFrame) -> pd.DataFrame:
    """Runs compare within one set-up: keep the one most runs share, say which were left out."""
    labels = sweep.setups(summaries)
    main = labels.value_counts().index[0]
    left_out = summaries[labels != main]
    if len(left_out):
        st.warning(f"Runs {', '.join(map(str, left_out['run_id']))} learn another set-up than {main} "
                   "and are left out of the comparison.", icon=":material/filter_alt:")
    return summaries[labels == main].reset_index(drop=True)


def stop_grid(run_ids: list[int]) -> str | None:
    """Stop the live runs of a comparison that this browser may manage; a sentence saying how
    many it left alone and why, or None when it stopped them all. A comparison link may hold
    anyone's runs (a shared grid, a terminal's sweep): those are watched, not stopped."""
    stopped = left = 0
    for run_id in run_ids:
        try:
            job_manager().stop(run_id, by=current_actor())
            stopped += 1
        except OwnershipError:
            left += 1
    if not left:
        return None
    them, belongs = ("them", "they belong") if left != 1 else ("it", "it belongs")
    done = f"Stopped {stopped} run{'s' * (stopped != 1)}" if stopped else "Stopped nothing"
    return (f"{done} and left {left} run{'s' * (left != 1)} alone: {belongs} to someone else, and "
            f"only the person who started {them} (or the lecturer) can stop {them}.")


def comparison(store: Store, run_ids: list[int]) -> None:
    summaries = sweep.run_summaries(store, run_ids)
    if summaries.empty:
        st.warning("None of the runs in the link is in the store (deleted?).")
        return
    summaries = one_setup(summaries)
    suite = SUITES[summaries["suite"].iloc[0]]
    tasks = list(summaries["tasks"].iloc[0])
    live = bool(summaries["status"].isin(LIVE).any())

    @st.fragment(run_every=POLL_S if live else None)
    def progress_and_results() -> None:
        current = sweep.run_summaries(store, summaries["run_id"])
        finished = int((~current["status"].isin(LIVE)).sum())
        st.subheader("Runs", anchor=False)
        st.caption(f"{finished} of {len(current)} finished" + (" — the grid is training; this fills in "
                   "as runs finish." if finished < len(current) else "."))
        st.dataframe(compare_viz.status_table(current), hide_index=True, key=f"{PREFIX}status",
                     column_config={"Run": st.column_config.NumberColumn(format="%d"),
                                    "Progress": st.column_config.ProgressColumn(min_value=0, max_value=1)})
        st.subheader("Validation curves", anchor=False)
        st.caption("Line: mean over seeds; band: mean ± one standard deviation. The y axis is zoomed to the "
                   "curves, not the metric's whole range.")
        bands = compare_viz.seed_bands(sweep.validation_curves(store, current), current)
        columns = st.columns(min(len(tasks), 2))
        for i, task in enumerate(tasks):
            if bands.empty:
                columns[i % len(columns)].info("The curves appear with the first evaluation.")
                break
            draw(columns[i % len(columns)], compare_viz.band_chart(
                bands, task=task, y_title=compare_viz.metric_axis_title(suite, task),
                x_max=int(current["steps"].max()),
                y_domain=compare_viz.zoomed_domain(bands, task, bounds=compare_viz.metric_bounds(suite, task))))
        # The error-bar charts wait for the whole grid: the poll redraws only what changes.
        results(store, current, suite, tasks, charts=not live)
        if live and finished == len(current):
            st.rerun()  # all done: redraw the page once more, without polling, Pareto plot included

    actions = st.columns(3)
    actions[0].download_button(
        "Export these runs as CSV", lambda: store.export_csv([int(r) for r in summaries["run_id"]]),
        file_name="compared-runs.csv", mime="text/csv", on_click="ignore", key=f"{PREFIX}csv",
        width="stretch", help="Every recorded number of the compared runs, in long (tidy) format: "
        "run_id, run_name, step, split, task, metric, value.")
    if live and actions[1].button("Stop the grid", key=f"{PREFIX}stop", width="stretch",
                                  help="Stop every queued or running run of this comparison that "
                                       "you started; what they recorded is kept."):
        note = stop_grid([int(r) for r in summaries[summaries["status"].isin(LIVE)]["run_id"]])
        if note:
            st.session_state[f"{PREFIX}stop_note"] = note  # shown after the rerun below
        st.rerun()
    if note := st.session_state.pop(f"{PREFIX}stop_note", None):
        st.info(note, icon=":material/lock:")
    progress_and_results()
    if not live:
        final = sweep.with_delta_m(summaries, sweep.baseline_metrics(store, summaries))
        pareto(final, suite, tasks)
        st.subheader("Gradient conflicts", anchor=False)
        # The STL baselines share nothing: no task gradients to conflict.
        conflict_section(store, [int(r) for r in summaries[~summaries["baseline"]]["run_id"]])


def results(store: Store, summaries: pd.DataFrame, suite, tasks: list[str], *, charts: bool = True) -> None:
    summaries = sweep.with_delta_m(summaries, sweep.baseline_metrics(store, summaries))
    table = sweep.results_table(summaries)
    st.subheader("Results", anchor=False)
    if table.empty:
        st.info("The table appears when the first run finishes.")
        return
    st.dataframe(compare_viz.display_table(table, suite, tasks), hide_index=True, key=f"{PREFIX}results")
    st.caption(f"Final validation metrics, mean ± std over seeds (sample std). {sweep.BASELINE_NOTE} "
               f"Rank: by Δm % (by the tasks' verdicts where Δm % is missing); {sweep.NOISE_NOTE} "
               "Mean rank: the rows' rank on each task (1 is best), averaged over tasks. ms / step: training time per step from the runs' clocks (set-up excluded).")
    if charts:
        final_values(table, suite, tasks)
    done = summaries[(summaries["status"] == "done") & ~summaries["baseline"]]
    if done["delta_m"].isna().any():
        configs = [store.get_run(int(r)).config for r in done["run_id"]]
        missing = missing_baselines(store, configs)
        if missing:
            st.info(f"{len(missing)} STL baseline run(s) are missing, so some Δm % are blank. A baseline "
                    f"matches a run on: {BASELINE_KEY_TEXT}.", icon=":material/info:")
            if st.button(f"Train the {len(missing)} missing STL baseline(s)", key=f"{PREFIX}baselines"):
                ids = submit_runs(missing, failure="Could not start the baselines", icon=":material/error:")
                if ids is not None:
                    show([*st.session_state.compare_runs, *ids])
                    st.rerun()
        else:
            st.info("The STL baselines are training; Δm % fills in when they finish.", icon=":material/hourglass_top:")


def final_values(table: pd.DataFrame, suite, tasks: list[str]) -> None:
    charts = compare_viz.final_value_charts(table, suite, tasks)
    columns = st.columns(min(len(charts), 2) or 1)
    for i, chart in enumerate(charts):
        draw(columns[i % len(columns)], chart)
    st.caption("Points: final values, bars: mean ± one std over seeds, dashed line: the reference "
               "method's mean. Last chart: each method's Δm % minus the reference's, with its 95 % "
               "interval; an interval across the dashed 0 line is within seed noise.")


def pareto(summaries: pd.DataFrame, suite, tasks: list[str]) -> None:
    better = compare_viz.higher_is_better(suite, tasks)
    if len(tasks) < 2:
        return
    st.subheader("Trade-offs between tasks", anchor=False)
    if len(tasks) > 2:
        draw_plotly(st, compare_viz.parallel_figure(summaries, suite, tasks), key=f"{PREFIX}parallel")
        st.caption("One line per finished run, in its method's colour; every axis points up for better "
                   "(lower-is-better metrics are flipped).")
        return
    left, right = st.columns([3, 1])
    x_task = left.selectbox("Task on the x axis", tasks, key=f"{PREFIX}x_task", help="Swap the axes of the plot.")
    y_task = next(t for t in tasks if t != x_task)
    pair = [x_task, y_task]
    points, ref, volume = compare_viz.pareto_points(summaries, pair, [better[tasks.index(t)] for t in pair])
    if points.empty:
        st.info("The Pareto plot appears when runs have finished.")
        return
    draw_plotly(left, compare_viz.pareto_figure(
        points, ref, volume, x_task=x_task, y_task=y_task,
        x_title=compare_viz.metric_axis_title(suite, x_task), y_title=compare_viz.metric_axis_title(suite, y_task),
        higher_is_better=(better[tasks.index(x_task)], better[tasks.index(y_task)])), key=f"{PREFIX}pareto")
    front = points[points["front"]]
    right.metric("Hypervolume", f"{volume:.4g}", help="The area of the (task A, task B) plane that the "
                 "runs dominate, measured from the reference point: larger is better.")
    right.markdown(f"**Reference point:** ({ref[0]:.4f}, {ref[1]:.4f}) — per task, the worst run's value "
                   "moved a further tenth of the runs' range towards worse.")
    right.markdown("**Non-dominated runs:** " + ", ".join(
        f"{r} ({compare_viz.run_label(m, a)}, seed {s})" for r, m, a, s in
        zip(front["run_id"], front["method"], front["arch"], front["seed"], strict=True)))
    right.caption("A run is non-dominated when no other run is at least as good on both tasks and "
                  "better on one; they are ringed in grey and joined by the dotted front.")


# --- the page ----------------------------------------------------------------------------------------

store = run_store()
for problem in adopt_url():
    st.warning(problem, icon=":material/link_off:")
grid: sweep.Grid = st.session_state.compare_grid
run_ids: list[int] = st.session_state.compare_runs

st.header("Compare", anchor=False)
st.caption("Does a method beat equal weighting on these tasks? Run each on several seeds and compare "
           "means with their spread, against single-task baselines.")
chooser = st.expander("What to compare", expanded=not run_ids, icon=":material/tune:")
launch_tab, pick_tab = chooser.tabs(["Launch a grid", "Pick stored runs"])
with launch_tab:
    grid = grid_form(store, grid)
    st.session_state.compare_grid = grid
    with_baselines = st.toggle("Train the missing STL baselines", value=True, key=f"{PREFIX}with_baselines",
                               help="Single-task runs (one per seed) that Δm % is measured against; "
                                    "found in the store when they exist, trained once otherwise.")
    configs = grid.configs()
    extra = len(missing_baselines(store, configs)) if with_baselines else 0
    training = sweep.live_runs(store, run_ids)
    if st.button(f"Launch {len(configs)} runs" + (f" + {extra} STL baselines" if extra else ""),
                 type="primary", key=f"{PREFIX}launch", disabled=bool(training),
                 help=(f"The grid below is training ({len(training)} run(s) queued or running): wait for "
                       "it, or stop it, before launching another." if training else
                       "Queue every run with the job manager; they train one after another and the "
                       "comparison below fills in live.")):
        launched = launch(store, grid, baselines=with_baselines)
        if launched is not None:
            show(launched, grid)
    share_panel(grid.base, key="share.compare",
                on_upload=lambda config: url.write(
                    grid_query(sweep.Grid(config, grid.methods, grid.archs, grid.seeds), run_ids)),
                command=sweep_line(grid.base, grid.methods, grid.archs, grid.seeds),
                file_name="mtl-grid-setup.json")
with pick_tab:
    pick_runs(store, run_ids)

run_ids = st.session_state.compare_runs
sync_url(st.session_state.compare_grid, run_ids)
st.divider()
if run_ids:
    comparison(store, run_ids)
else:
    st.info("Launch a grid or pick stored runs: the comparison appears here.", icon=":material/compare_arrows:")
