"""Train: pick tasks, an architecture and a method, press Train, watch the run live.

The page holds one canonical RunConfig in ``st.session_state`` and mirrors it (plus ``run=<id>``
while a run is shown) in the URL, so a link or a reload reproduces the page. Training happens in a
worker process; the dashboard is two fragments that poll the store while the run is live and
stop polling when it ends.
"""

from __future__ import annotations

import math
import time

import streamlit as st

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import ConfigError, RunConfig
from mtl_core.figures import run as viz
from mtl_core.methods import METHODS
from mtl_core.runs.baselines import BASELINE_KEY_TEXT
from mtl_core.runs.jobs import QueuePlace
from mtl_core.runs.notes import Note, RunSummary, run_notes, run_summary
from mtl_core.runs.owners import REFUSAL, OwnershipError, may_manage
from mtl_core.runs.store import TERMINAL, RunInfo, Store
from mtl_core.runs.view import RunView
from mtl_core.suites import SUITES
from pages import _url as url
from pages._charts import draw, sharing_panel
from pages._conflicts import conflict_section
from pages._data import data_panel
from pages._entry import through_app
from pages._identity import current_actor
from pages._polling import DIAGNOSTICS_POLL_S, POLL_S, QUEUED_POLL_S
from pages._resources import job_manager, run_store
from pages._share import share_panel
from pages._submit import submit_run
from pages._widgets import clear_form, config_form, method_explanation

through_app()

WRITTEN = "train_query"  # session_state: the query string this page last wrote
STATUS_ICONS = {"queued": ":material/schedule:", "running": ":material/play_circle:",
                "done": ":material/check_circle:", "stopped": ":material/stop_circle:",
                "diverged": ":material/warning:", "failed": ":material/error:",
                "interrupted": ":material/pause_circle:"}


# --- the URL and the canonical config -----------------------------------------------------------

def adopt_url(store: Store) -> list[str]:
    """Take the config and run from the URL when it is not the one this page last wrote: a first
    load, a reload, a shared link, or "open" from the Runs page. Returns problems to show."""
    query = url.incoming(WRITTEN, state_key="config")
    if query is None:
        return []
    problems: list[str] = []
    run_id = _run_id(query.pop("run", None))
    run = store.get_run(run_id) if run_id is not None else None
    if run_id is not None and run is None:
        problems.append(f"Run {run_id} is not in the store (deleted?); showing its settings only.")
    config = run.config if run is not None and not query else RunConfig()
    if query:
        try:
            config = RunConfig.from_query(query)
        except ConfigError as error:
            problems.append("The link's settings are not valid, so the defaults are shown: "
                            + "; ".join(error.problems) + ".")
    st.session_state.config = config
    st.session_state.run_id = run.id if run is not None else None
    clear_form()
    return problems


def sync_url(config: RunConfig, run_id: int | None) -> None:
    url.sync(config.to_query() | ({"run": str(run_id)} if run_id is not None else {}), written_key=WRITTEN)


def _run_id(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


# --- reading a run ------------------------------------------------------------------------------

def run_view(store: Store, run_id: int) -> RunView:
    """The run's records, read incrementally: each poll asks the store only for steps after the
    last one seen (a long run logs thousands of rows per second)."""
    view = RunView.read(store, run_id, previous=st.session_state.get("records"))
    st.session_state.records = view
    return view


# --- drawing ------------------------------------------------------------------------------------

def status_panel(info: RunInfo, view: RunView) -> None:
    config = info.config
    times = view.times
    steps_done = int(times["step"].max()) if len(times) else int(info.steps_done or 0)
    speed = viz.steps_per_second(times)
    status, steps, rate, device = st.columns(4)
    status.metric("Status", info.status, help="queued → running → done, or stopped (by you), "
                  "diverged (a loss became NaN or infinite), failed (an error), interrupted "
                  "(the server stopped).")
    steps.metric("Steps", f"{steps_done:,} / {config.steps:,}")
    rate.metric("Speed", f"{speed:,.0f} steps/s" if speed else "—",
                help="Optimiser steps per second over the last 50 steps, diagnostics included.")
    device.metric("Device", info.device or config.device)
    st.progress(min(steps_done / config.steps, 1.0))
    if info.message:
        show = st.error if info.status in {"failed", "diverged"} else st.info
        show(info.message, icon=STATUS_ICONS.get(info.status))


def run_colors(info: RunInfo) -> dict[str, str]:
    """The run's tasks and their colours (by their index in the suite: the same in every run)."""
    config = info.config
    return {task: color for task, color in viz.task_colors(SUITES[config.suite]).items()
            if task in config.tasks}


def progress_charts(info: RunInfo, view: RunView) -> None:
    """Training loss and validation metrics: the curves a person watches a run by."""
    config = info.config
    colors = run_colors(info)
    train = view.losses
    val = view.validation
    if train.empty:
        st.info("Waiting for the first step: the worker is building the data and the model.",
                icon=":material/hourglass_top:")
        return
    loss, metric = st.columns(2)
    # Every step axis spans the whole run (0 to config.steps), so the charts line up, a live curve
    # grows from left to right, and a live chart's spec stays the same between polls: the browser
    # only swaps its data instead of rebuilding it.
    draw(loss, viz.loss_chart(train, colors, x_max=config.steps))
    with metric:
        if val.empty:
            st.info(f"Validation metrics arrive at step {config.eval_every:,}.",
                    icon=":material/hourglass_top:")
        for _, chart in viz.metric_charts(val, SUITES[config.suite], config.tasks, colors,
                                             x_max=config.steps) if len(val) else []:
            draw(st, chart)


def diagnostic_charts(info: RunInfo, view: RunView) -> None:
    """How the tasks interact: gradient cosines (latest and over time), weights, gradient norms,
    how the update treats each task, and the sharing the architecture learns."""
    config = info.config
    colors = run_colors(info)
    if not view.started:
        return
    latest = view.latest_cosine()
    heatmap, history = st.columns(2)
    if latest is None:
        heatmap.info(_no_cosine_reason(info), icon=":material/info:")
    else:
        probe_step, matrix = latest
        draw(heatmap, viz.cosine_heatmap(matrix, config.tasks), stretch=False)
        heatmap.caption(f"At step {probe_step:,}, the latest gradient probe.")
        if len(config.tasks) > 1:
            draw(history, viz.cosine_history_chart(view.cosine_pairs(config.tasks), x_max=config.steps))
    history.caption(COSINE_HELP)

    weights, norms = st.columns(2)
    weight = view.weights
    if len(weight) and weight["value"].isna().all():
        weights.info(f"{METHODS[config.method].name} gives the tasks no weights: its update is not a "
                     "weighted sum of their gradients. *How the update treats each task* shows its effect.",
                     icon=":material/info:")
    else:
        draw(weights, viz.weights_chart(weight, colors, x_max=config.steps))
    if len(config.tasks) > 1 and viz.all_tasks_equal(weight):
        weights.caption("Every task has the same weight at every step: the lines lie on top of each other.")
    grad_norm = view.grad_norms
    if not grad_norm.empty:
        draw(norms, viz.task_lines_chart(
            grad_norm, colors, y_title="Gradient norm (log scale)", log_y=True,
            title="Gradient norm per task (shared parameters)", x_max=config.steps))

    alignment, norm = st.columns(2)
    cos_update = view.update_alignment
    if not cos_update.empty:
        draw(alignment, viz.update_alignment_chart(cos_update, colors, x_max=config.steps))
        draw(norm, viz.update_norm_chart(view.update_norms, x_max=config.steps))

    if not view.snapshots.empty:
        step = view.matrix_step
        st.markdown("##### The sharing it learns", help="What the architecture has learned about "
                    "sharing: mixing weights, gates over experts, attention or which layers each task "
                    "runs. The Sharing page replays a run's snapshots step by step.")
        sharing_panel(view.snapshots, step, caption=f"At step {step:,}, the latest snapshot "
                      f"(every {config.snapshot_every:,} steps).")


COSINE_HELP = ("**Reading the cosines.** Each task's gradient on the shared parameters says how it "
               "wants them to move. A cosine near +1: the tasks agree; near 0: they are unrelated; "
               "below 0: they conflict — a step that helps one hurts the other, to first order. "
               "Gradient methods (PCGrad, MGDA, CAGrad, ...) act on exactly this.")


def _no_cosine_reason(info: RunInfo) -> str:
    config = info.config
    if ARCHITECTURES[config.arch].category == "baseline":
        return (f"{ARCHITECTURES[config.arch].name} share no parameters, so there are no task "
                "gradients to compare: no cosines for this run.")
    if len(config.tasks) < 2:
        return "One task has no other task to agree or conflict with: no cosines."
    if config.probe_every == 0 and not METHODS[config.method].needs_jacobian:
        return "Gradient probes are off (probe every 0), so no cosines were recorded."
    if info.status in TERMINAL:
        return "This run recorded no gradient cosines."
    return f"The gradient cosines arrive with the first probe (every {config.probe_every:,} steps)."


# --- what a run means: the queue, the notes, the end-of-run summary ----------------------------------

NOTE_ICONS = {"vanishing": ":material/trending_down:", "dominance": ":material/balance:",
              "conflict": ":material/call_split:", "divergence": ":material/warning:"}
NOTES_HELP = ("Events found in the run's records: a task's gradient vanishing, one task dominating "
              "the shared gradient, two tasks conflicting on most probes, the run diverging. Each "
              "comes with the step it happened; the charts below show it.")


def queue_panel(info: RunInfo) -> None:
    """A run waiting for a worker: its place in the queue and the wait, measured from the runs
    ahead of it (:meth:`JobManager.queue_place`)."""
    place = job_manager().queue_place(info.id)
    if place is None:  # queued by another process (the CLI): this server does not schedule it
        st.info("Queued: it starts when a worker is free.", icon=":material/schedule:")
        return
    st.info(queue_text(place), icon=":material/schedule:")


def queue_text(place: QueuePlace) -> str:
    training = len(place.ahead) - (place.position - 1)
    ahead = [f"#{run_id}" + (" (training)" if index < training else "")
             for index, run_id in enumerate(place.ahead)]
    shown = ", ".join(ahead[:4]) + (f" and {len(ahead) - 4} more" if len(ahead) > 4 else "")
    runs = "run is" if len(ahead) == 1 else "runs are"
    wait = (f"It should start in **{duration_text(place.wait_s)}**: the runs ahead's remaining steps at "
            "their measured speed." if place.wait_s is not None else
            "Its wait is not known yet: no run ahead has trained a step to measure its speed.")
    return (f"**Waiting in the queue, position {place.position}.** {len(ahead)} {runs} ahead of it: "
            f"{shown}. {wait}")


def duration_text(seconds: float) -> str:
    """A wait as a person says it: about 40 s, about 3 min, about 1 h 10 min."""
    if seconds < 60:
        return f"about {max(round(seconds), 1)} s" if seconds >= 1 else "a moment"
    minutes = round(seconds / 60)
    return f"about {minutes} min" if minutes < 60 else f"about {minutes // 60} h {minutes % 60} min"


def notes_panel(notes: list[Note], *, ended: bool) -> None:
    """The run's automatic notes, in step order; while it trains, those seen so far."""
    if not notes and not ended:
        return
    st.markdown("##### What to notice" + ("" if ended else " so far"), help=NOTES_HELP)
    if not notes:
        st.caption("Nothing unusual: no vanished gradient, no task dominating the shared layers, no pair "
                   "conflicting on most probes.")
    for note in notes:
        st.warning(f"**Step {note.step:,} · {note.title}.** {note.text}", icon=NOTE_ICONS.get(note.kind))


def summary_panel(info: RunInfo, summary: RunSummary) -> None:
    """The final metric of each task, against the single-task baseline when one is stored."""
    config = info.config
    suite = SUITES[config.suite]
    table = summary.table
    has_baseline = summary.baseline_id is not None
    shown = {
        "Task": [suite.task(task).label for task in table["task"]],
        "Metric": [f"{metric} {'↑' if up else '↓'}" for metric, up in zip(table["metric"], table["higher_is_better"], strict=True)],
        "Final": [_number(value) for value in table["final"]],
    }
    if has_baseline:
        shown["Single-task"] = [_number(value) for value in table["baseline"]]
        shown["Change (+ better)"] = [_number(value, "{:+.1f} %") for value in table["change"]]
    st.markdown("##### How the run ended", help="Each task's own metric at the last validation; ↑: "
                "higher is better, ↓: lower is better.")
    st.dataframe(shown, hide_index=True)
    if summary.is_baseline:
        st.caption("This run is a single-task baseline: runs with the same "
                   f"{BASELINE_KEY_TEXT} are measured against it (delta-m).")
    elif summary.delta_m is not None:
        st.metric("Δm against single-task", f"{summary.delta_m:+.2f} %",
                  help=f"Delta-m: the mean relative gain over the single-task baseline (run "
                       f"{summary.baseline_id}), in per cent. Positive: the shared model does better "
                       "than training each task alone; negative: sharing costs.")
    elif has_baseline:
        st.caption(f"Delta-m needs every task's single-task value (run {summary.baseline_id} lacks one).")
    else:
        st.caption("No single-task baseline of this set-up is stored, so no delta-m. Compare trains "
                   f"one (same {BASELINE_KEY_TEXT}, architecture *stl*).")


def _number(value: float, form: str = "{:.3g}") -> str:
    return form.format(value) if math.isfinite(value) else "—"


def weights_caption(info: RunInfo, view: RunView) -> None:
    """What the "Task weights" chart means for a gradient method, or what it changes instead."""
    method = METHODS[info.config.method]
    if method.kind != "aggregation" or not view.started:
        return
    if len(view.weights) and view.weights["value"].isna().all():
        st.caption(f"**What {method.name} changes instead of weights.** {method.summary}")
        return
    st.caption(f"**Task weights of a gradient method.** {method.name} does not weight the losses: it "
               "builds the update from the tasks' gradients. The *Task weights* chart shows the implied "
               "weights w, with update = w·J = Σ w_t g_t (J: one row per task, its gradient on the shared "
               "layers). A weight above 1 means the update carries more of that task's gradient than plain "
               "summing would, typically a task whose gradient is small or in conflict; compare the "
               "weights within a step.")


def introduction(config: RunConfig) -> None:
    method = METHODS[config.method]
    st.markdown("#### What you will see")
    st.markdown(
        "Press **Train** and the run's curves appear here as it trains: each task's training loss "
        "and validation metric, the weight the method gives each task, and how the tasks' "
        "gradients on the shared layers agree or conflict. Each task keeps one colour on every "
        "chart. Runs are saved: find them again on the **Runs** page.")
    st.markdown(f"#### {method.name}")
    st.caption(f"{method.category} · {method.cost}")
    st.markdown(method.summary)
    method_explanation(method)


def dashboard(run_id: int) -> None:
    """The live view of a run: two fragments that poll the store while the run is live."""
    store = run_store()
    info = store.get_run(run_id)
    if info is None:
        st.warning(f"Run {run_id} is no longer in the store.")
        return
    live = info.status not in TERMINAL
    title, toggle = st.columns([3, 1], vertical_alignment="bottom")
    # Default names end in "#<id>"; a renamed run gets its id added.
    title.subheader(info.name if info.name.endswith(f"#{info.id}") else f"{info.name} (run {info.id})",
                    anchor=False)
    paused = live and toggle.toggle("Pause live updates", key="pause_live",
                                    help="Freeze the charts (to zoom or hover); the run keeps training.")

    polling = live and not paused
    # A run waiting in the queue (no worker has it yet) changes only when it starts: poll it
    # slowly, and its diagnostics not at all. In a classroom most open pages show such a run.
    waiting = info.status == "queued" and job_manager().worker_pid(run_id) is None

    @st.fragment(run_every=(QUEUED_POLL_S if waiting else POLL_S) if polling else None)
    def progress_view() -> None:
        current = store.get_run(run_id)
        if current is None:
            st.warning(f"Run {run_id} was deleted.")
            return
        view = run_view(store, run_id)
        # Only a run a worker has taken is about to write: a run waiting in the queue would keep
        # this session busy re-reading the store for a whole poll (a classroom's 29 queued runs
        # made every page update wait seconds: benchmarks/load.py).
        if live and view.empty and job_manager().worker_pid(run_id) is not None:
            view = wait_for_first_step(store, run_id)
            current = store.get_run(run_id) or current
        status_panel(current, view)
        if current.status == "queued" and job_manager().worker_pid(run_id) is None:
            queue_panel(current)  # not "building the data": it waits behind other runs
        else:
            if current.status in TERMINAL:
                summary_panel(current, run_summary(store, current, view))
                notes_panel(run_notes(view, current.config.tasks, status=current.status,
                                      message=current.message), ended=True)
            progress_charts(current, view)
        if polling and current.status in TERMINAL:
            st.rerun()  # the run ended: redraw the page without polling, buttons re-enabled
        if polling and waiting and current.status != "queued":
            st.rerun()  # the run started: redraw the page to poll at the live pace

    # Slower: these change with the probes, and each redraw costs CPU the worker could use.
    @st.fragment(run_every=DIAGNOSTICS_POLL_S if polling and not waiting else None)
    def diagnostics_view() -> None:
        current = store.get_run(run_id)
        # A run still in the queue has nothing to diagnose: skip the store reads (in a classroom
        # most open pages show a queued run, and this poll was a third of their server time).
        if current is not None and current.steps_done > 0:
            view = run_view(store, run_id)
            if current.status not in TERMINAL:
                notes_panel(run_notes(view, current.config.tasks), ended=False)
            diagnostic_charts(current, view)
            weights_caption(current, view)
            with st.expander("Gradient conflict in detail: how often, which task dominates, which layers"):
                conflict_section(store, [run_id], include_basics=False)

    progress_view()
    diagnostics_view()


def wait_for_first_step(store: Store, run_id: int) -> RunView:
    """Before the first record, look again every 50 ms for up to one poll interval, so the first
    curve shows as soon as the worker writes it rather than at the next poll."""
    deadline = time.monotonic() + 0.9 * POLL_S
    view = run_view(store, run_id)
    while view.empty and time.monotonic() < deadline:
        time.sleep(0.05)
        view = run_view(store, run_id)
    return view


# --- the page -----------------------------------------------------------------------------------

store = run_store()
job_manager()  # started with the page, so its warm worker has imported torch by the first Train
for problem in adopt_url(store):
    st.warning(problem, icon=":material/link_off:")
config: RunConfig = st.session_state.config
run_id: int | None = st.session_state.get("run_id")

form, view = st.columns([1, 2.4], gap="large")
with form:
    st.header("Train", anchor=False)
    actions = st.container()  # drawn above the form, filled once the form is read
    data, problems = config_form(config)
    if data and not problems:
        try:
            config = RunConfig.parse(data)
        except ConfigError as error:
            problems = error.problems
    if data and not problems:
        st.session_state.config = config
    share_panel(st.session_state.config, key="share.train",
                on_upload=lambda uploaded: url.write(uploaded.to_query()))
    st.page_link("pages/compare.py", label="Compare methods on this set-up", icon=":material/compare_arrows:",
                 query_params=st.session_state.config.to_query(),
                 help="Open Compare with this set-up: equal weighting against this method, three seeds each.")

with actions:
    train_col, stop_col = st.columns(2)
    if train_col.button("Train", type="primary", width="stretch", disabled=bool(problems) or not data,
                        help="Start a run with these settings (it queues if another is training)."):
        new_id = submit_run(config)  # or it says why not (e.g. a full queue)
        if new_id is not None:
            run_id = st.session_state.run_id = new_id
            st.session_state.pop("pause_live", None)  # a new run starts live
    shown = store.get_run(run_id) if run_id is not None else None
    live = shown is not None and shown.status not in TERMINAL
    # A shared link shows anyone's run; only its owner (or the lecturer) may stop it.
    yours = shown is None or may_manage(current_actor(), shown.owner)
    if stop_col.button("Stop", width="stretch", disabled=not live or not yours,
                       help="Stop the shown run after its current step; its records are kept."
                       if yours else REFUSAL):
        try:
            job_manager().stop(run_id, by=current_actor())
        except OwnershipError as refusal:  # the lecturer locked meanwhile, in another tab
            st.error(str(refusal), icon=":material/lock:")
    if live and not yours:
        st.caption(REFUSAL)
    if problems:
        st.error("This configuration cannot run:\n" + "\n".join(f"- {p}" for p in problems),
                 icon=":material/error:")

sync_url(st.session_state.config, run_id)  # before the charts: the URL answers at once

with view:
    shown_config = st.session_state.config  # the last valid set-up
    data_panel(shown_config.suite, shown_config.suite_params, shown_config.tasks, key="train.data", columns=3)
    if run_id is None:
        introduction(config)
    else:
        dashboard(run_id)
