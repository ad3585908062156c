"""Runs: every stored run — find one, open its dashboard, rename, delete, export, re-run."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mtl_core.runs.owners import REFUSAL, may_manage
from mtl_core.runs.store import MAX_NAME_CHARS, TERMINAL, RunInfo, Store
from pages._entry import through_app
from pages._identity import current_actor
from pages._resources import run_store
from pages._submit import submit_run

through_app()

SELECTED = "runs.selected"


def open_on_train(info: RunInfo, run_id: int | None = None) -> None:
    """Show a run's dashboard (and its settings in the form) on the Train page."""
    query = info.config.to_query() | {"run": str(run_id if run_id is not None else info.id)}
    st.switch_page("pages/train.py", query_params=query)


def filtered(runs: pd.DataFrame) -> pd.DataFrame:
    """Narrow the table by name, status, suite and method (empty: all)."""
    search, *columns = st.columns([2, 1, 1, 1])
    text = search.text_input("Name contains", key="runs.filter.name", placeholder="any name",
                             help="Show only runs whose name contains this text (any case).")
    if text.strip():
        runs = runs[runs["name"].str.contains(text.strip(), case=False, regex=False)]
    for column, (field, label) in zip(columns, [("status", "Status"), ("suite", "Suite"),
                                                ("method", "Method")], strict=True):
        options = sorted(runs[field].dropna().unique())
        chosen = column.multiselect(label, options, key=f"runs.filter.{field}",
                                    placeholder="all", help=f"Show only runs with these {label.lower()} values.")
        if chosen:
            runs = runs[runs[field].isin(chosen)]
    return runs


def runs_table(runs: pd.DataFrame) -> None:
    """The table; clicking a row selects that run below."""
    # Final metrics come as "<task> <metric>" columns; each task's own metric is enough here.
    metric_columns = [c for c in runs.columns if " " in c and not c.endswith(" loss")]
    done = pd.to_numeric(runs["steps_done"], errors="coerce").fillna(0).astype(int)
    shown = runs.assign(progress=[f"{d:,} / {int(n):,}" for d, n in zip(done, runs["steps"], strict=True)])
    # Empty cells read "None" in the grid: a dash says "nothing here" (a metric another suite's run
    # has not, a run with no message). The metrics become text at their fixed three decimals.
    for column in metric_columns:
        shown[column] = [f"{v:.3f}" if pd.notna(v) else "—" for v in pd.to_numeric(shown[column], errors="coerce")]
    for column in ("device", "message", "tasks"):
        if column in shown.columns:
            shown[column] = shown[column].fillna("—").replace("", "—")
    order = ["id", "name", "status", "suite", "tasks", "arch", "method", "progress", *metric_columns,
             "created_at", "device", "message"]
    event = st.dataframe(
        shown, hide_index=True, column_order=[c for c in order if c in shown.columns],
        on_select="rerun", selection_mode="single-row", key="runs.table",
        column_config={"id": st.column_config.NumberColumn("Run", format="%d"),
                       "progress": st.column_config.TextColumn("Steps"),
                       "created_at": st.column_config.DatetimeColumn("Created", format="YYYY-MM-DD HH:mm"),
                       **{c: st.column_config.TextColumn(c) for c in metric_columns}})
    rows = event.selection.rows if event is not None else []
    picked = int(shown.iloc[rows[0]]["id"]) if rows else None
    if picked is not None and picked != st.session_state.get("runs.picked"):
        st.session_state[SELECTED] = picked  # a click in the table wins over the selectbox
    st.session_state["runs.picked"] = picked


def run_actions(store: Store, info: RunInfo) -> None:
    run_id = info.id
    st.markdown(f"**{info.name}** — {info.status}, {info.steps_done or 0:,} of {info.config.steps:,} steps"
                + (f" on {info.device}" if info.device else "") + ".")
    if info.message:
        st.caption(info.message)
    final = store.final_metrics(run_id)
    if final:
        st.dataframe(pd.DataFrame(final).T.rename_axis("task"), width="content")

    open_col, rerun_col, csv_col, json_col = st.columns(4)
    if open_col.button("Open", type="primary", width="stretch", key="runs.open",
                       help="Show this run's dashboard and settings on the Train page."):
        open_on_train(info)
    if rerun_col.button("Re-run", width="stretch", key="runs.rerun",
                        help="Train the same configuration again (same seed: the same curves)."):
        new_id = submit_run(info.config, icon=":material/error:")
        if new_id is not None:
            # "<name>, re-run #<new id>": one id, at the end, where a default name has it (a
            # "(re-run)" suffix gave "... #2 (re-run) (run 15)" on Train).
            suffix = f", re-run #{new_id}"
            store.rename(new_id, info.name.removesuffix(f" #{info.id}")[:MAX_NAME_CHARS - len(suffix)] + suffix)
            open_on_train(info, new_id)
    csv_col.download_button("Export CSV", lambda: store.export_csv([run_id]), width="stretch",
                            file_name=f"run-{run_id}.csv", mime="text/csv", on_click="ignore",
                            key="runs.csv", help="Every recorded step of this run, in long format.")
    json_col.download_button("Config JSON", info.config.to_json(), width="stretch",
                             file_name=f"run-{run_id}.json", mime="application/json",
                             on_click="ignore", key="runs.json",
                             help="The run's configuration, for the command line or a later run.")
    st.caption("Re-run it from a terminal with the downloaded config:")
    st.code(f"python -m mtl_core run --config run-{run_id}.json", language="bash")

    # Anyone may open, export and re-run any run; only its owner (or the lecturer) renames or
    # deletes it. The buttons are disabled for others, and each action checks again: a client
    # can press a disabled button (the server is not told it was disabled).
    yours = may_manage(current_actor(), info.owner)
    if not yours:
        st.caption(REFUSAL)
    with st.form("runs.rename_form", border=False):
        name_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
        name = name_col.text_input("Name", value=info.name, key=f"runs.name.{run_id}", disabled=not yours,
                                   max_chars=MAX_NAME_CHARS,
                                   help="A name to find the run by; it changes nothing else." if yours else REFUSAL)
        if button_col.form_submit_button("Rename", width="stretch", disabled=not yours,
                                         help="Save the new name (the run's records stay as they are)."
                                         if yours else REFUSAL) and name.strip():
            if not may_manage(current_actor(), info.owner):
                st.error(REFUSAL, icon=":material/lock:")
            else:
                try:  # max_chars is the browser's; a client can send a longer name anyway
                    store.rename(run_id, name.strip())
                except ValueError as error:
                    st.error(str(error), icon=":material/error:")
                else:
                    st.rerun()

    if st.session_state.get("runs.confirm_delete") != run_id:
        if st.button("Delete…", key="runs.delete", disabled=info.status not in TERMINAL or not yours,
                     help="Remove the run and all its records (a live run must be stopped first)."
                     if yours else REFUSAL):
            st.session_state["runs.confirm_delete"] = run_id
            st.rerun()
    elif not yours:
        st.session_state.pop("runs.confirm_delete", None)
        st.error(REFUSAL, icon=":material/lock:")
    else:
        st.warning(f"Delete run {run_id} ({info.name}) and all its records? This cannot be undone.")
        yes, no = st.columns(2)
        if yes.button("Delete for good", type="primary", key="runs.delete_yes", width="stretch",
                      help="Remove the run and every record of it from the store."):
            store.delete(run_id)
            st.session_state.pop("runs.confirm_delete", None)
            st.session_state.pop(SELECTED, None)
            st.toast(f"Run {run_id} deleted.")
            st.rerun()
        if no.button("Cancel", key="runs.delete_no", width="stretch", help="Keep the run."):
            st.session_state.pop("runs.confirm_delete", None)
            st.rerun()


def own_newest_run(store: Store, ids: list[int]) -> int | None:
    """The newest of ``ids`` that this browser started, or None."""
    owner = current_actor().owner
    mine = {info.id for info in store.run_infos() if owner is not None and info.owner == owner}
    return max((run_id for run_id in ids if run_id in mine), default=None)


store = run_store()
st.header("Runs", anchor=False)
runs = store.list_runs()
if runs.empty:
    st.info("No runs yet: configure one on the Train page and press Train.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

runs = filtered(runs)
runs_table(runs)
shown_ids = runs["id"].tolist()
st.download_button("Export these runs as CSV", lambda: store.export_csv(shown_ids),
                   file_name="runs.csv", mime="text/csv", on_click="ignore", key="runs.csv_all",
                   disabled=runs.empty, help="All recorded steps of every run in the table above.")
if runs.empty:
    st.stop()

ids = runs["id"].astype(int).tolist()
if st.session_state.get(SELECTED) not in ids:
    # Your own newest run, or none: the newest run of the whole class is someone else's.
    st.session_state[SELECTED] = own_newest_run(store, ids)
names = dict(zip(ids, runs["name"], strict=True))
statuses = dict(zip(ids, runs["status"], strict=True))
st.subheader("Selected run", anchor=False)
selected = st.selectbox("Run", ids, key=SELECTED, help="Pick a run (or click its row in the table).",
                        format_func=lambda i: f"{i} · {names[i]} · {statuses[i]}")
info = store.get_run(selected) if selected is not None else None
if selected is None:
    st.info("Pick a run above (or click its row in the table) to open, export, rename or delete it.")
elif info is None:
    st.warning(f"Run {selected} was just deleted.")
else:
    run_actions(store, info)
