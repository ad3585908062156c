"""Your own table on the Train page: upload a CSV, see how each column reads, pick the targets (a
task each) and the inputs, see what would be trained, then use it as the run's suite.

Nothing is stored until the person presses "Use this table": then the file and its column choices
go beside the run store, named by their hash (``mtl_core.suites.user_tables``), so the run can be
re-run and exported like any other. Every refusal is the core's one sentence, never a traceback.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from mtl_core.suites import user_tables as tables

OWN_TABLE = "own-table"  # the suite select's entry that opens this panel
OWN_TABLE_LABEL = "Your own table (upload a CSV)…"
USED = "own_tables"  # session_state: the table suites this session has used, newest last
PENDING = "own_table_pending"  # session_state: a table just stored, to select on the next run
KEY = "train.table."  # under the Train form's prefix: cleared with the form
HEAD_ROWS = 5
# Megabytes, Streamlit's unit (and server.maxUploadSize in .streamlit/config.toml): the browser
# refuses a larger file before sending it; read_table says the same of one sent anyway.
UPLOAD_LIMIT_MB = tables.LIMITS.max_bytes // (1024 * 1024)


def remember(key: str) -> None:
    """Offer ``key`` in the suite select from now on, and select it on the next run."""
    used = st.session_state.setdefault(USED, [])
    if key not in used:
        used.append(key)
    st.session_state[PENDING] = key


def table_suites(current: str) -> list[str]:
    """The table suites to offer beside the built-in ones: this session's, and the shown config's."""
    used = list(st.session_state.get(USED, []))
    if tables.KEY_PATTERN.fullmatch(current) and current not in used:
        used.append(current)
    return used


def take_pending(select_key: str) -> None:
    """Select a table stored on the previous run (a widget's value may only be set before it is
    drawn)."""
    pending = st.session_state.pop(PENDING, None)
    if pending is not None:
        st.session_state[select_key] = pending


def table_upload(store_path: str | None) -> None:
    """The upload panel: file, column kinds, targets, inputs, what would be trained, and the button
    that stores it (then the page reruns with the table selected)."""
    st.caption(tables.LIMITS.describe())
    uploaded = st.file_uploader(
        "Your table (CSV)", type=["csv"], key=f"{KEY}file", max_upload_size=UPLOAD_LIMIT_MB,
        help="A table with a header row: each target column you pick becomes a task (classification "
             "or regression, read from its values), the other columns you pick are its inputs.")
    if uploaded is None:
        st.info("Upload a CSV file to train on your own data: pick two or more target columns, and "
                "each becomes a task.", icon=":material/upload_file:")
        return
    raw = uploaded.getvalue()
    try:
        frame = tables.read_table(raw, uploaded.name)
    except tables.TableError as error:
        st.error(str(error), icon=":material/error:")
        return
    columns = tables.inspect_columns(frame)
    st.markdown(f"**{tables.display_name(uploaded.name)}**: {len(frame):,} rows, {len(frame.columns)} columns. "
                "The first rows:")
    st.dataframe(frame.head(HEAD_ROWS), hide_index=True, width="stretch")
    st.dataframe(column_table(columns), hide_index=True, width="stretch",
                 column_config={"note": st.column_config.TextColumn(width="large")})

    usable = [name for name, info in columns.items() if info.kind is not None]
    prefix = f"{KEY}{hashlib.sha256(raw).hexdigest()[:12]}."  # choices are per file
    targets = st.multiselect(
        "Targets (a task each)", usable, key=f"{prefix}targets",
        help="The columns to predict, two or more: each becomes a task. Text columns and whole "
             "numbers with few values are classes; other numbers are regression targets.")
    kinds = {}
    for target in targets:
        inferred = columns[target].kind
        options = list(tables.KINDS) if columns[target].numeric else ["classification"]
        kind_key = f"{prefix}kind.{target}"
        st.session_state.setdefault(kind_key, inferred)
        kinds[target] = st.selectbox(
            f"{target}: predict as", options, key=kind_key,
            help="Classification: one class per distinct value (accuracy). Regression: a number "
                 "(mean absolute error). Only a numeric column can be a regression target.")
    offered = [name for name in usable if name not in targets]
    inputs_key = f"{prefix}inputs"
    if inputs_key in st.session_state:  # a column that became a target is no input any more
        st.session_state[inputs_key] = [name for name in st.session_state[inputs_key] if name in offered]
    else:
        st.session_state[inputs_key] = offered
    inputs = st.multiselect(
        "Inputs", offered, key=inputs_key,
        help="The columns the network reads: every usable column that is not a target, unless you "
             "remove some. Numbers are standardised; text becomes one 0/1 input per value.")
    if len(targets) < 2:
        st.info("Pick two or more targets: each becomes a task.", icon=":material/checklist:")
        return
    overrides = {target: kind for target, kind in kinds.items() if kind != columns[target].kind}
    spec = tables.TableSpec.for_bytes(raw, uploaded.name, targets=targets, inputs=inputs, kinds=overrides)
    try:
        prepared = tables.prepare(frame, spec)
    except tables.TableError as error:
        st.error(str(error), icon=":material/error:")
        return
    for warning in prepared.warnings:
        st.warning(warning, icon=":material/warning:")
    st.markdown(what_is_trained(prepared))
    if st.button("Use this table", type="primary", key=f"{KEY}use",
                 help="Store the file and these choices beside the run store (named by their hash, "
                      "so a run on them can be re-run and exported), and pick it as the task suite."):
        try:
            key = tables.store_table(raw, spec, tables.tables_root(store_path))
        except tables.TableError as error:
            st.error(str(error), icon=":material/error:")
            return
        remember(key)
        st.rerun()


def column_table(columns: dict[str, tables.ColumnInfo]) -> pd.DataFrame:
    """One row per column: how it reads (classes, a number, not usable) and why."""
    rows = []
    for name, info in columns.items():
        if info.kind is None:
            reads, note = "not usable", info.reason or ""
        elif info.kind == "classification":
            reads, note = "classes", f"{info.distinct:,} different values"
        else:
            reads, note = "a number", f"{info.distinct:,} different values"
        if info.kind is not None and info.missing:
            note += f"; {info.missing:,} missing"
        rows.append({"column": name, "reads as": reads, "note": note})
    return pd.DataFrame(rows, columns=["column", "reads as", "note"])


def what_is_trained(prepared: tables.PreparedTable) -> str:
    tasks = ", ".join(f"**{task.column}** ({task.kind}"
                      + (f", {task.n_outputs} classes)" if task.kind == "classification" else ")")
                      for task in prepared.tasks)
    return (f"Tasks: {tasks}. {len(prepared.features)} input feature{'s' * (len(prepared.features) != 1)} "
            f"from {len(prepared.spec.inputs)} column{'s' * (len(prepared.spec.inputs) != 1)}; "
            f"{len(prepared.train_rows):,} rows to train on, {len(prepared.val_rows):,} to validate on.")
