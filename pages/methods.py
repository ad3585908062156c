"""Methods: the catalogue of every method, architecture and task suite, read from the registries.

A card says what a method does, its update rule, knobs, cost, paper, what it is known for and what
it struggles with, and a Try it button that opens Train on a set-up where it matters. A link with
``?method=<key>`` (or ``?arch=<key>``) opens that card and offers a jump to it. A suite's card
lists its tasks and knobs and lets a student see its data (example inputs with their labels).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import RunConfig
from mtl_core.methods import METHODS
from mtl_core.registry import JACOBIAN_COST, ArchInfo, Entry, MethodInfo, SuiteInfo
from mtl_core.suites import SUITES
from pages import _url as url
from pages._data import data_panel
from pages._entry import through_app

through_app()

ONE_PASS = "one backward pass"
PARTIAL = "T partial backward passes"
JACOBIAN = "the Jacobian (T backward passes)"


def cost_class(method: MethodInfo) -> str:
    """How expensive a step is with the method's default settings, in three classes. The cost text
    names the default first ("MGDA-UB (default): ...; exact: ...")."""
    default = method.cost.split(";")[0]
    if JACOBIAN_COST in default:
        return JACOBIAN
    return PARTIAL if "T backward" in default else ONE_PASS  # GradNorm's, MGDA-UB's partial passes


def knob_table(entry: Entry) -> None:
    if not entry.knobs:
        st.caption("No knobs: nothing to tune.")
        return
    rows = [{"knob": knob.label, "default": str(knob.default) if knob.default != "" else "(all ones)",
             "range": knob.allowed(), "help": knob.help} for knob in entry.knobs]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={"help": st.column_config.TextColumn(width="large")})


def paper_line(entry: Entry) -> None:
    if entry.paper is None:
        return
    link = f" — [arXiv:{entry.paper.arxiv}]({entry.paper.url})" if entry.paper.arxiv else ""
    st.markdown(f"**Paper:** {entry.paper.cite()}{link}")


def try_it(entry: Entry, owner: str) -> None:
    """Open the Train page with the entry's prepared set-up (validated here: ours, so a bad one
    fails loudly in tests/test_catalogue.py rather than being caught)."""
    prepared = entry.extra["try_it"]
    st.caption(f"**Try it:** {prepared['why']}")
    if st.button("Try it", key=f"methods.try.{owner}.{entry.key}", type="primary",
                 help="Open the Train page with this set-up; press Train there to run it."):
        config = RunConfig.parse(prepared["config"])
        st.switch_page("pages/train.py", query_params=config.to_query())


def method_card(method: MethodInfo, *, selected: bool) -> None:
    with st.container(border=True):
        st.subheader(method.name, anchor=method.key)
        st.caption(f"{method.category} · {method.cost}"
                   + (" · needs the Jacobian" if method.needs_jacobian else ""))
        st.markdown(method.summary)
        st.markdown(f"**Known for:** {method.extra['known_for']}  \n"
                    f"**Struggles with:** {method.extra['struggles_with']}")
        with st.expander("Update rule, knobs and paper", expanded=selected):
            st.latex(method.formula)
            knob_table(method)
            paper_line(method)
            if method.extra.get("simplified"):
                st.info(f"**Simplified here:** {method.extra['simplified']}", icon=":material/info:")
        try_it(method, "method")


def arch_card(arch: ArchInfo, *, selected: bool) -> None:
    with st.container(border=True):
        st.subheader(arch.name, anchor=f"arch-{arch.key}")
        st.caption(arch.category)
        st.markdown(arch.summary)
        with st.expander("Knobs and paper", expanded=selected):
            knob_table(arch)
            paper_line(arch)
            if arch.extra.get("simplified"):
                st.info(f"**Simplified here:** {arch.extra['simplified']}", icon=":material/info:")
        try_it(arch, "arch")


def suite_card(suite: SuiteInfo) -> None:
    # A markdown heading, not st.subheader: the subheaders are the method and architecture cards.
    with st.container(border=True):
        st.markdown(f"### {suite.name}")
        st.caption(f"`{suite.key}` · {suite.input_kind} inputs · {len(suite.tasks)} tasks")
        st.markdown(suite.summary)
        st.dataframe(pd.DataFrame([{"task": task.name, "what it is": task.help, "kind": task.kind,
                                    "metric": task.metric + (" (higher is better)" if task.higher_is_better
                                                             else " (lower is better)"),
                                    "default": "yes" if task.name in suite.default_tasks else ""}
                                   for task in suite.tasks]),
                     hide_index=True, width="stretch",
                     column_config={"what it is": st.column_config.TextColumn(width="large")})
        with st.expander("Knobs and paper"):
            knob_table(suite)
            paper_line(suite)
        data_panel(suite.key, key=f"methods.data.{suite.key}")


def filtered_methods() -> list[MethodInfo]:
    category_col, cost_col, jacobian_col = st.columns(3)
    categories = category_col.multiselect(
        "Category", sorted({m.category for m in METHODS}), key="methods.filter.category",
        placeholder="all categories",
        help="Loss weightings set a weight per task loss; the gradient families (surgery, "
             "alignment, balancing, conflict-free, multi-objective) combine the task gradients.")
    costs = cost_col.multiselect(
        "Cost per step", [ONE_PASS, PARTIAL, JACOBIAN], key="methods.filter.cost",
        placeholder="any cost",
        help="With the default settings: one backward pass like plain training; T partial passes "
             "(through the heads or to the shared representation) plus one; or the full Jacobian, "
             "one backward pass per task through the shared layers.")
    jacobian = jacobian_col.segmented_control(
        "Needs the Jacobian", ["either", "yes", "no"], default="either", key="methods.filter.jacobian",
        help="The Jacobian is the matrix of every task's gradient on the shared parameters, one row "
             "per task (T backward passes). Gradient methods need it (or its cheaper form on the shared "
             "representation); loss weightings need only the losses.")
    return [m for m in METHODS
            if (not categories or m.category in categories)
            and (not costs or cost_class(m) in costs)
            and (jacobian in (None, "either") or m.needs_jacobian == (jacobian == "yes"))]


# --- the page -----------------------------------------------------------------------------------

st.header("Methods", anchor=False)
st.markdown("Every way the playground balances tasks and shares the network, with what it is "
            "known for, what it struggles with, and a set-up to try it on; and the task suites it "
            "trains on, with their data. The same lists fill the Train page's menus.")

query = url.read()
selected_method = query.get("method")
selected_arch = query.get("arch")
if selected_method in METHODS:
    st.info(f"Opened at **[{METHODS[selected_method].name}](#{selected_method})**: its card is "
            "expanded below.", icon=":material/arrow_downward:")
elif selected_arch in ARCHITECTURES:
    st.info(f"Opened at **[{ARCHITECTURES[selected_arch].name}](#arch-{selected_arch})**: its card "
            "is expanded below.", icon=":material/arrow_downward:")

st.header(f"Balancing methods ({len(METHODS)})", anchor="balancing-methods")
st.caption("Words on the cards: **T** is the number of tasks. The **Jacobian** is every task's "
           "gradient on the shared layers, stacked one row per task; computing it costs one backward "
           "pass per task, which is why the gradient methods are slower per step than loss weightings.")
shown = filtered_methods()
st.caption(f"{len(shown)} of {len(METHODS)} methods.")
for method in shown:
    method_card(method, selected=method.key == selected_method)

st.header(f"Architectures ({len(ARCHITECTURES)})", anchor="architectures")
st.caption("How the tasks share the network. Try it trains each on MultiDigits (left and right "
           "digit) with equal weighting; the Sharing page draws them.")
for arch in ARCHITECTURES:
    arch_card(arch, selected=arch.key == selected_arch)

st.header(f"Task suites ({len(SUITES)})", anchor="task-suites")
st.caption("What the networks learn: each suite's tasks, and (See the data) its first validation "
           "examples with every task's target, and how often each class occurs.")
for suite in SUITES:
    suite_card(suite)
