"""See the data: a suite's first validation examples with their targets, its class balance and how
strongly its tasks' targets go together.

Placed on the Methods page's suite cards and on Train. The panel is an expander that builds the
suite only once it is opened: building one imports torch (1.5 s, once per server process) and
draws its data, which a page that merely lists suites should not pay for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from mtl_core.figures import data as data_viz
from mtl_core.suites import SUITES, build_suite
from mtl_core.suites import examples as suite_examples
from pages._charts import draw
from pages._download import data_ready


@st.cache_data(show_spinner=False, max_entries=32)
def example_frames(suite_key: str, params: tuple[tuple[str, Any], ...],
                   tasks: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """The frames the panel draws (small: a few hundred rows), cached per suite set-up."""
    data = build_suite(suite_key, dict(params))
    examples = suite_examples.data_examples(data, tasks)
    frames = {"labels": suite_examples.example_labels(examples),
              "balance": suite_examples.class_balance(data, tasks),
              "association": suite_examples.label_association(data, tasks)}
    if examples.input_kind == "image":
        frames["pixels"] = suite_examples.pixel_frame(examples)
    else:
        frames["table"] = suite_examples.feature_table(examples)
        frames["input_size"] = pd.DataFrame({"features": [examples.inputs.shape[1]]})
    return frames


def data_panel(suite_key: str, suite_params: Mapping[str, Any] | None = None,
               tasks: Sequence[str] | None = None, *, key: str | None = None, columns: int = 4) -> None:
    """An expander "See the data" with the suite's first validation examples, each task's target
    under each example (or, for vector inputs, a table of the first rows), what each target means,
    and the class balance of every classification task. ``tasks`` defaults to all the suite's."""
    info = SUITES[suite_key]
    chosen = tuple(tasks) if tasks else info.task_names
    panel_key = key or f"data.{suite_key}"
    panel = st.expander("See the data", icon=":material/image:", key=panel_key, on_change="rerun")
    if not panel.open:
        return
    with panel:
        if not data_ready(suite_key, dict(suite_params or {}), key=f"{panel_key}.download"):
            return
        with st.spinner("Building the data…"):
            frames = example_frames(suite_key, tuple(sorted((suite_params or {}).items())), chosen)
        n = frames["labels"]["example"].nunique()
        if "pixels" in frames:
            st.caption(f"The first {n} validation examples (digits the model never trains on), "
                       "with each task's target under each image, one task a line.")
            draw(st, data_viz.examples_grid(frames["pixels"], frames["labels"], columns=columns), stretch=False)
        else:
            size = int(frames["input_size"]["features"].iloc[0])
            st.caption(f"The first {n} validation examples: each input is {size} numbers (the first "
                       f"{len(frames['table'].columns) - len(chosen)} shown), then each task's target."
                       + (" A table's inputs are standardised (0: the training rows' mean, 1: one standard "
                          "deviation; a text column is one 0/1 input per value); a number to predict is "
                          "shown as its difference from the training mean, in its own unit."
                          if info.input_kind == "vector" and not frames["table"].columns[0].startswith("x[")
                          else ""))
            st.dataframe(frames["table"], hide_index=True, width="content",
                         column_config={name: st.column_config.NumberColumn(format="%.3f")
                                        for name in frames["table"].columns if name not in chosen})
        st.dataframe(pd.DataFrame([{"task": task, "means": info.task(task).help,
                                    "unit": info.task(task).unit or "-"}
                                   for task in chosen]),
                     hide_index=True, width="stretch",
                     column_config={"means": st.column_config.TextColumn(width="large")})
        if frames["balance"].empty:
            st.caption("No classification task selected: every target is a number, so there is no "
                       "class balance to show.")
        else:
            st.caption("How often each class occurs in the training set; the dashed line is a "
                       "perfectly even share. A rare class is one a model can ignore cheaply.")
            draw(st, data_viz.class_balance_chart(frames["balance"], info), stretch=False)
        if len(chosen) > 1:
            st.caption("How strongly each pair of tasks' training targets go together (0: knowing one "
                       "tells nothing of the other; 1: one decides the other). Related tasks have more to "
                       "share; unrelated ones can get in each other's way (Ma et al., KDD 2018). The "
                       "measure fits the pair: |Pearson r| for two numbers, Cramér's V for two classes, "
                       "the correlation ratio η for a class and a number (in each cell's tooltip).")
            draw(st, data_viz.association_heatmap(frames["association"], info), stretch=False)
