"""Gradient-conflict diagnostics of stored runs, shared by the Train and Compare pages: how often
each pair of tasks conflicts, which task's gradient dominates, how directly each update descends
each task, and which shared layers carry the conflict. The frames come from mtl_core.runs.view (the
numbers from mtl_core.engine.conflict), the figures from mtl_core.figures.lab."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from mtl_core.engine import conflict
from mtl_core.figures import lab as lab_viz
from mtl_core.figures import run as viz
from mtl_core.runs.store import RunInfo
from mtl_core.runs.view import conflict_frames
from pages._charts import draw


def run_label(info: RunInfo) -> str:
    return f"#{info.id} {info.name}"


def run_colors(infos: Sequence[RunInfo]) -> dict[str, str]:
    """Each run in its method's colour, as on every chart of the Compare page (the seeds of one
    method share it; the tooltip names the run); runs of one method only: the Okabe-Ito colours
    in turn, so that they can be told apart."""
    methods = [info.config.method for info in infos]
    if len(set(methods)) > 1 or len(infos) == 1:
        colors = viz.method_colors()
        return {run_label(info): colors.get(info.config.method, viz.BASELINE_GREY) for info in infos}
    return {run_label(info): viz.OKABE_ITO[i % len(viz.OKABE_ITO)] for i, info in enumerate(infos)}


def conflict_section(store, run_ids: Sequence[int], *, include_basics: bool = True) -> None:
    """Draw the conflict diagnostics (cosines over time, conflict shares, norm ratios, per layer)
    of the given stored runs. ``include_basics=False`` leaves out the cosine history and
    cos(update, g_t), for a page that draws those already (Train)."""
    infos = [info for info in (store.get_run(run_id) for run_id in run_ids) if info is not None]
    if not infos:
        st.caption("No runs to diagnose.")
        return
    frames = conflict_frames(store, infos, run_label)
    if frames["pairs"].empty and frames["norms"].empty:
        st.info("No gradient probes recorded yet: conflict is measured on probe steps (set *probe every* "
                "above 0), and needs at least two tasks sharing parameters.")
        return
    colors = run_colors(infos)
    st.caption("Two tasks **conflict** on a probe when their gradients on the shared parameters have a "
               "negative cosine (Yu et al., 2020): a step along their sum then raises one task's loss to first "
               "order. A large norm ratio means one task's gradient dominates the shared update.")
    if include_basics and not frames["pairs"].empty:
        draw(st, lab_viz.cosine_runs_chart(frames["pairs"], colors), stretch=False)
    if not frames["shares"].empty:
        draw(st, lab_viz.conflict_share_chart(frames["shares"], colors))
    left, right = st.columns(2)
    if not frames["norms"].empty:
        draw(left, lab_viz.norm_ratio_chart(frames["norms"], colors))
        if len(infos) == 1:
            task_colors = viz.task_colors(list(infos[0].config.tasks))
            draw(right, lab_viz.norm_share_chart(frames["norms"], task_colors))
    if include_basics and not frames["alignment"].empty:
        tasks = list(dict.fromkeys(frames["alignment"]["task"]))
        draw(right, lab_viz.alignment_runs_chart(frames["alignment"], colors, viz.task_colors(tasks)))
    layer_view(frames["layers"], infos)


def layer_view(layers: pd.DataFrame, infos: Sequence[RunInfo]) -> None:
    if layers.empty:
        st.caption("Per-layer conflict: this run recorded none (it is measured on probe steps of runs "
                   "trained with this version).")
        return
    labels = list(dict.fromkeys(layers["run"]))
    key = "conflicts.layer_run." + ".".join(str(info.id) for info in infos)
    run = st.selectbox("Per-layer view of run", labels, key=key,
                       help="Which run's shared layers to show.") if len(labels) > 1 else labels[0]
    chosen = layers[layers["run"] == run]
    left, right = st.columns(2)
    draw(left, lab_viz.layer_heatmap(conflict.layer_summary(chosen)))
    pairs = list(dict.fromkeys(chosen["pair"]))
    pair = right.selectbox("Pair over time", pairs, key=key + ".pair",
                           help="The task pair whose per-layer cosine is drawn probe by probe.")
    draw(right, lab_viz.layer_history_heatmap(chosen, pair))
