"""Widgets generated from the registries: one helper draws any Knob, one draws a RunConfig form.

Nothing here names a suite, an architecture or a method: new entries in the registries appear in
the form with their knobs, ranges and help. Widget values live under keys starting with ``train.``;
each is seeded once from the canonical config (``st.session_state`` survives leaving the page, a
widget's value does not), so the form always shows the config the page holds.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from typing import Any

import streamlit as st

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import RunConfig
from mtl_core.methods import METHODS
from mtl_core.registry import Entry, Knob, KnobValue, MethodInfo, Registry
from mtl_core.suites import SUITES
from pages._download import data_ready
from pages._resources import store_path
from pages._table import OWN_TABLE, OWN_TABLE_LABEL, table_suites, table_upload, take_pending

WIDGET_PREFIX = "train."

# Help for the training settings; the registries carry the help of suites, tasks and knobs.
TRAINING_HELP = {
    "optimizer": "Adam adapts each parameter's step size and is forgiving; plain SGD shows the "
                 "raw effect of the task weights more directly.",
    "lr": "Learning rate: the optimiser's step size. Too large and the losses blow up (the run "
          "stops as 'diverged'); too small and nothing moves.",
    "batch_size": "Training examples per step, the same batch for every task.",
    "steps": "How many optimiser steps to train for.",
    "eval_every": "Measure every task's validation loss and metric every N steps.",
    "probe_every": "Compute the task gradients' norms and cosines every N steps (0: never). "
                   "Costs one backward pass per task on those steps; gradient methods "
                   "compute them every step anyway.",
    "snapshot_every": "Record the architecture's sharing pattern every N steps (0: never).",
    "affinity_every": "Measure the lookahead task affinity (TAG, Fifty et al. 2021) every N steps "
                      "(0: never): how a step on each task's gradient alone changes every other "
                      "task's loss. Costs one forward pass per task on those steps; the Task "
                      "affinity page shows the result.",
    "seed": "Random seed for data order and initial weights: the same config and seed give the "
            "same curves.",
    "device": "Where the worker trains: 'auto' picks a GPU when there is one, else the CPU.",
}
_LABELS = {"optimizer": "Optimizer", "lr": "Learning rate", "batch_size": "Batch size",
           "steps": "Steps", "eval_every": "Evaluate every", "probe_every": "Probe gradients every",
           "snapshot_every": "Snapshot sharing every", "affinity_every": "Task affinity every",
           "seed": "Seed", "device": "Device"}


def seed_widget(key: str, value: Any) -> str:
    """Give widget ``key`` its starting value once (not on every rerun: the person's edits win)."""
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def clear_form() -> None:
    """Forget every form widget so that the next draw seeds them from the canonical config."""
    for key in [key for key in st.session_state if str(key).startswith(WIDGET_PREFIX)]:
        del st.session_state[key]


def knob_widget(knob: Knob, *, key: str, value: KnobValue | None = None) -> KnobValue:
    """The widget that fits a knob: toggle, selectbox, slider (small bounded ranges) or number
    box (log scales, wide ranges), with the knob's range and help."""
    seed_widget(key, knob.default if value is None else value)
    if knob.kind == "bool":
        return st.toggle(knob.label, key=key, help=knob.help)
    if knob.kind == "choice":
        return st.selectbox(knob.label, knob.choices, key=key, help=knob.help)
    if knob.kind == "floats":
        # Free text ("1, 0.5"): RunConfig validates it and the form shows its sentence.
        return st.text_input(knob.label, key=key, help=knob.help, placeholder="e.g. 1, 0.5")
    bounded = knob.low is not None and knob.high is not None
    if knob.kind == "int":
        if bounded and knob.high - knob.low <= 32:
            return st.slider(knob.label, int(knob.low), int(knob.high), key=key, help=knob.help)
        return st.number_input(knob.label, min_value=_int(knob.low), max_value=_int(knob.high),
                               step=1, key=key, help=knob.help)
    if bounded and not knob.log:
        step = _nice_step((knob.high - knob.low) / 100)
        return st.slider(knob.label, float(knob.low), float(knob.high), step=step, key=key,
                         help=knob.help)
    return st.number_input(knob.label, min_value=_float(knob.low), max_value=_float(knob.high), format="%g",
                           step=_log_step(float(st.session_state[key])) if knob.log else None,
                           key=key, help=knob.help)


def knob_group(entry: Entry, *, owner: str, values: Mapping[str, KnobValue]) -> dict[str, KnobValue]:
    """All knobs of one registry entry; ``values`` are the current ones (missing: the default)."""
    return {knob.name: knob_widget(knob, key=f"{WIDGET_PREFIX}{owner}.{entry.key}.{knob.name}",
                                   value=values.get(knob.name))
            for knob in entry.knobs}


def entry_select(label: str, registry: Registry, *, key: str, value: str, help: str) -> str:
    """A selectbox over a registry, showing display names."""
    seed_widget(key, value if value in registry else registry.keys()[0])
    return st.selectbox(label, registry.keys(), key=key, help=help,
                        format_func=lambda k: registry[k].name)


def config_form(config: RunConfig) -> tuple[dict[str, Any], list[str]]:
    """Draw the whole configuration, seeded from ``config``; return the raw settings for
    ``RunConfig.parse`` and the problems the form itself can see (no task chosen). No settings
    (an empty mapping) and no problems: a table is being uploaded, there is nothing to run yet."""
    p = WIDGET_PREFIX
    problems: list[str] = []

    st.subheader("Tasks", anchor=False)
    suite_key = suite_select(config.suite)
    if suite_key == OWN_TABLE:
        table_upload(store_path())
        return {}, []  # nothing to run yet: the panel says what to do next
    suite = SUITES[suite_key]
    same_suite = suite_key == config.suite
    st.caption(suite.summary)
    tasks_key = seed_widget(f"{p}tasks.{suite_key}",
                            list(config.tasks) if same_suite else list(suite.default_tasks))
    tasks = st.multiselect(
        "Tasks to learn together", suite.task_names, key=tasks_key,
        format_func=lambda name: f"{suite.task(name).label} ({name})",
        help="Pick two or more to learn them jointly (one gives plain single-task training). "
             + " ".join(f"**{t.name}**: {t.help} Metric: {t.metric}." for t in suite.tasks))
    if not tasks:
        problems.append("tasks: choose at least one task")
    suite_params = knob_group(suite, owner="suite", values=config.suite_params if same_suite else {})
    try:
        if not data_ready(suite_key, suite_params, key=f"{p}download"):
            problems.append("data: the data set these settings need is not downloaded yet (see above)")
    except ValueError:
        pass  # settings that do not validate: RunConfig says why, below

    st.subheader("Model and method", anchor=False)
    arch_key = entry_select("Architecture", ARCHITECTURES, key=f"{p}arch", value=config.arch,
                            help="How the tasks share the network. " +
                            " ".join(f"**{a.name}** ({a.category}): {a.summary}" for a in ARCHITECTURES))
    arch = ARCHITECTURES[arch_key]
    st.caption(f"*{arch.category}* — {arch.summary}")
    arch_params = knob_group(arch, owner="arch", values=config.arch_params if arch_key == config.arch else {})

    method_key = entry_select("Method", METHODS, key=f"{p}method", value=config.method,
                              help="How the tasks are balanced: a **loss weighting** sets a weight "
                              "per task loss and backpropagates once; a **gradient method** takes "
                              "every task's gradient on the shared parameters (one backward pass per "
                              "task) and combines them. The card below explains the one chosen.")
    method = METHODS[method_key]
    st.caption(f"*{method.category}, {method.cost}* — {method.summary}")
    method_card(method)
    method_params = knob_group(method, owner="method",
                               values=config.method_params if method_key == config.method else {})

    with st.expander("Training settings", expanded=False):
        training = {name: _training_widget(name, getattr(config, name))
                    for name in ("optimizer", "lr", "batch_size", "steps", "eval_every",
                                 "probe_every", "snapshot_every", "affinity_every", "seed", "device")}
    data = {"suite": suite_key, "suite_params": suite_params, "tasks": tuple(tasks),
            "arch": arch_key, "arch_params": arch_params,
            "method": method_key, "method_params": method_params, **training}
    return data, problems


def suite_select(current: str) -> str:
    """The suite select: the built-in suites, the person's own tables, and an entry to upload one."""
    key = f"{WIDGET_PREFIX}suite"
    options = [*SUITES.keys(), *table_suites(current), OWN_TABLE]
    take_pending(key)
    seed_widget(key, current if current in options else options[0])
    return st.selectbox("Task suite", options, key=key,
                        format_func=lambda k: OWN_TABLE_LABEL if k == OWN_TABLE else SUITES[k].name,
                        help="The data and the tasks to learn from it. "
                             + " ".join(f"**{s.name}**: {s.summary}" for s in SUITES)
                             + " **Your own table**: upload a CSV and pick its targets, a task each.")


def method_card(method: MethodInfo) -> None:
    with st.expander(f"How {method.name} works", expanded=False):
        method_explanation(method)


def method_explanation(method: MethodInfo) -> None:
    """The method's update rule, its paper, and where the playground simplifies it."""
    st.latex(method.formula)
    if method.paper is not None:
        link = f" — [arXiv:{method.paper.arxiv}]({method.paper.url})" if method.paper.arxiv else ""
        st.markdown(f"{method.paper.cite()}{link}")
    simplified = method.extra.get("simplified")
    if simplified:
        st.info(f"**Simplified here:** {simplified}", icon=":material/info:")


def _training_widget(name: str, value: Any) -> Any:
    key = seed_widget(f"{WIDGET_PREFIX}{name}", value)
    field = RunConfig.model_fields[name]
    label, help = _LABELS[name], TRAINING_HELP[name]
    choices = typing.get_args(field.annotation)
    if choices:
        return st.selectbox(label, choices, key=key, help=help)
    low, high = _field_bounds(name)
    if field.annotation is float:
        return st.number_input(label, min_value=_float(low), max_value=_float(high), format="%g",
                               step=_log_step(float(st.session_state[key])), key=key, help=help)
    step = 100 if name == "steps" else 1
    return st.number_input(label, min_value=_int(low), max_value=_int(high), step=step, key=key,
                           help=help)


def _field_bounds(name: str) -> tuple[float | None, float | None]:
    """Inclusive bounds of a RunConfig field; an exclusive bound (lr > 0) is left to the
    validator, which says so in words."""
    low = high = None
    for rule in RunConfig.model_fields[name].metadata:
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    return low, high


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, the largest not above ``raw``."""
    power = 10.0 ** math.floor(math.log10(raw))  # a float even for 10 ** 0: sliders want one type
    return max(m * power for m in (1, 2, 5) if m * power <= raw)


def _log_step(value: float) -> float:
    """A +/- step a tenth of the value's order of magnitude: 1e-3 moves by 1e-4."""
    if value <= 0 or not math.isfinite(value):
        return 1e-4
    # 10.0, not 10: at lr = 10 (the bound) 10 ** 0 is the int 1, and number_input refuses mixed types
    return 10.0 ** (math.floor(math.log10(value)) - 1)
