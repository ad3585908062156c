"""Gradient lab: gradient conflict on the CAGrad paper's two-objective toy, and an explorer of what
each gradient method makes of hand-set task gradients. Every trajectory and arrow comes from the
registered aggregators (the trainer's code); the numbers live in mtl_core.lab.problem / toy / explorer
and the figures in mtl_core.figures.lab. A simulation over the server's budget
(``$MTL_MAX_LAB_SECONDS``) is refused before it starts, and one under way stops when its page goes.

The URL carries the toy's set-up (``methods``, ``steps``, ``starts`` as ``x1,x2;x1,x2``), so a link
reproduces what a person saw.
"""

from __future__ import annotations

import collections
import threading

import numpy as np
import pandas as pd
import streamlit as st

from mtl_core.figures import lab as lab_viz
from mtl_core.lab import explorer, problem, toy
from pages import _url as url
from pages._charts import draw, draw_plotly
from pages._entry import through_app

through_app()

STEP_CHOICES = (2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
DEFAULT_METHODS = ("ew", "mgda", "pcgrad", "cagrad")
EXPLORER_DEFAULT = ("mgda", "pcgrad", "cagrad", "imtl_g", "nash_mtl")
MAX_EXTRA_STARTS = 6
PLOT_KEY = "lab.toy_plot"
STARTS_KEY = "lab.extra_starts"
CLICKED_KEY = "lab.clicked"
MAX_CACHED = 16  # simulations kept for everyone: coming back to a set-up is instant


@st.cache_resource(show_spinner=False)
def finished_simulations() -> tuple[collections.OrderedDict, threading.Lock]:
    """The last ``MAX_CACHED`` simulations, shared by every session (as st.cache_data would, but
    filled only when a simulation ends: one stopped half-way is not kept)."""
    return collections.OrderedDict(), threading.Lock()


def simulate(methods: tuple[str, ...], starts: tuple[tuple[float, float], ...], steps: int, lr: float,
             optimizer: str) -> pd.DataFrame:
    """The trajectories, from the cache or computed in blocks under a progress bar. Each block ends
    with the bar's update, a Streamlit call: when the tab has closed or the person changed a
    setting, Streamlit has asked the script to stop and that call raises, so the work stops within
    a block (~0.1 s) instead of running on for nobody."""
    key = (methods, starts, steps, lr, optimizer)
    cache, lock = finished_simulations()
    with lock:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    label = (f"Simulating {len(methods) * len(starts)} trajectories x {steps:,} steps (the first simulation "
             "after the server starts also compiles the toy: a few seconds)...")
    bar = st.progress(0.0, text=label)
    trajectories = toy.simulate(methods, starts, steps=steps, lr=lr, optimizer=optimizer,
                                every=max(1, steps // 1000), after_block=lambda done: bar.progress(done, text=label))
    bar.empty()
    with lock:
        cache[key] = trajectories
        while len(cache) > MAX_CACHED:
            cache.popitem(last=False)
    return trajectories


@st.cache_data(show_spinner=False)
def loss_grid() -> pd.DataFrame:
    return problem.loss_grid(121)


def parse_starts(text: str) -> tuple[list[tuple[float, float]], str | None]:
    """``"x1, x2; x1, x2"`` -> points inside the window, and a message for what could not be read."""
    points, bad = [], []
    for part in (p.strip() for p in text.replace("\n", ";").split(";")):
        if not part:
            continue
        try:
            x1, x2 = (float(v) for v in part.replace(",", " ").split())
        except ValueError:
            bad.append(part)
            continue
        if not (problem.BOUNDS[0] <= x1 <= problem.BOUNDS[1] and problem.BOUNDS[0] <= x2 <= problem.BOUNDS[1]):
            bad.append(part)
            continue
        points.append((x1, x2))
    message = None
    if bad:
        message = (f"Skipped {', '.join(repr(b) for b in bad)}: write each point as two numbers between "
                   f"{problem.BOUNDS[0]:g} and {problem.BOUNDS[1]:g}, e.g. `0, 5; -3, 2`.")
    if len(points) > MAX_EXTRA_STARTS:
        message = f"At most {MAX_EXTRA_STARTS} extra start points; the first {MAX_EXTRA_STARTS} are used."
        points = points[:MAX_EXTRA_STARTS]
    return points, message


def adopt_clicked_start() -> None:
    """A point clicked on the plot (a selection event of its click targets) becomes an extra start:
    appended to the text box's value before the box is drawn, once per click."""
    event = st.session_state.get(PLOT_KEY)
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    clicked = [(round(float(p["x"]), 2), round(float(p["y"]), 2)) for p in points
               if p.get("curve_number", p.get("curveNumber")) is not None and "x" in p and "y" in p]
    if not clicked or clicked == st.session_state.get(CLICKED_KEY):
        return
    st.session_state[CLICKED_KEY] = clicked
    text = st.session_state.get(STARTS_KEY, "").strip().rstrip(";")
    added = "; ".join(f"{x:g}, {y:g}" for x, y in clicked)
    st.session_state[STARTS_KEY] = f"{text}; {added}" if text else added


def query_defaults() -> tuple[list[str], int, str]:
    params = url.read()
    methods = [m for m in params.get("methods", "").split(",") if m in toy_method_options()] or list(DEFAULT_METHODS)
    try:
        steps = int(params.get("steps", toy.PAPER_STEPS))
    except ValueError:
        steps = toy.PAPER_STEPS
    steps = min(STEP_CHOICES, key=lambda choice: abs(choice - steps))
    return methods, steps, params.get("starts", "")


def toy_method_options() -> list[str]:
    return ["ew", *explorer.gradient_methods()]


def toy_section() -> None:
    st.markdown(
        "**Two losses that disagree.** f1 and f2 of x = (x1, x2) (Liu et al., *Conflict-Averse Gradient "
        "Descent*, NeurIPS 2021, Fig. 1). The black segment is the **Pareto set** (no point improves both "
        "losses), the star the **minimum of their mean**. Each method runs Adam from the start points; "
        "press ▶ Play or drag the step slider to watch them move.")
    default_methods, default_steps, default_starts = query_defaults()
    controls = st.columns([3, 2, 2, 3])
    methods = controls[0].multiselect(
        "Methods", toy_method_options(), default=default_methods, format_func=lab_viz.method_name,
        help="Which methods to run. EW descends f1 + f2; the others combine the two task gradients with "
             "the same code as training (CAGrad with the paper's c = 0.5).")
    steps = controls[1].select_slider(
        "Adam steps", STEP_CHOICES, value=default_steps, format_func=lambda s: f"{s:,}",
        help="The paper runs 100,000 steps; fewer show where the methods are heading. Results are cached: "
             "coming back to a set-up is instant.")
    surface = controls[2].radio(
        "Contours of", list(lab_viz.SURFACES), format_func=lambda s: {"mean": "mean", "f1": "f1", "f2": "f2"}[s],
        horizontal=True, help="The surface drawn under the trajectories: task 1's loss, task 2's, or their mean.")
    st.session_state.setdefault(STARTS_KEY, default_starts)
    adopt_clicked_start()
    extra_text = controls[3].text_input(
        "Extra start points", key=STARTS_KEY, placeholder="e.g. 0, 5; -3, 2",
        help="Your own start points, as x1, x2 pairs separated by semicolons, inside [-11, 11] -- or click a "
             "point of the plot. The paper's three starts are always run.")
    with st.expander("Optimiser", expanded=False):
        cols = st.columns(2)
        optimizer = cols[0].radio("Optimiser", toy.OPTIMIZERS, horizontal=True,
                                  help="Adam, as in the paper, or plain gradient descent on the method's update.")
        lr = cols[1].number_input("Learning rate", min_value=1e-5, max_value=0.1, value=toy.PAPER_LR, format="%.4f",
                                  step=0.0005, help="The paper uses 0.001 with Adam.")
    extra, message = parse_starts(extra_text)
    if message:
        st.warning(message)
    url.write({"methods": ",".join(methods), "steps": str(steps), "starts": extra_text}, merge=True)
    if not methods:
        st.info("Pick at least one method to simulate.")
        return
    starts = tuple(problem.STARTS) + tuple(extra)
    try:  # before any work: a link may ask for half an hour of a shared core
        toy.check_budget(methods, len(starts), int(steps), step_choices=STEP_CHOICES)
    except toy.LabBudgetError as error:
        st.error(str(error))
        return
    trajectories = simulate(tuple(methods), starts, int(steps), float(lr), optimizer)
    left, right = st.columns([3, 2])
    figure = lab_viz.trajectory_animation(trajectories, loss_grid(), starts, surface=surface)
    lab_viz.add_click_targets(figure)
    draw_plotly(left, figure, key=PLOT_KEY, on_select="rerun", selection_mode="points")
    with right:
        st.markdown("**Losses along each trajectory**")
        draw(st, lab_viz.trajectory_losses_chart(trajectories, starts), stretch=False)
    findings(trajectories, starts, steps)


def findings(trajectories: pd.DataFrame, starts: tuple[tuple[float, float], ...], steps: int) -> None:
    ends = toy.final_points(trajectories)
    st.markdown(
        "**What the paper observed** (100,000 Adam steps, lr 0.001): gradient descent on the mean *stalls* "
        "from some starts; MGDA and PCGrad reach the Pareto set, at points that depend on the start; CAGrad "
        "(c = 0.5) converges to the mean's minimum. Check it in the table: *distance to the Pareto set* near 0 "
        "means on the set, *distance to the mean's minimum* near 0 means at the star.")
    if steps < toy.PAPER_STEPS:
        st.caption(f"You ran {steps:,} steps: some trajectories have not arrived yet; the paper's claim is about "
                   "100,000.")
    table = pd.DataFrame({
        "method": ends["method"].map(lab_viz.method_name),
        "start": [lab_viz.start_label(s, starts) for s in ends["start"]],
        "end x1": ends["x1"], "end x2": ends["x2"], "f1": ends["f1"], "f2": ends["f2"],
        "distance to Pareto set": ends["to_pareto_set"], "distance to mean's minimum": ends["to_average_minimum"],
    })
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table.columns[2:]})
    ew = ends[(ends["method"] == "ew") & (ends["start"] < len(problem.STARTS))]
    stalled = ew[ew["to_pareto_set"] > 1.0]
    if len(ew) and steps == toy.PAPER_STEPS:
        where = ", ".join(lab_viz.start_label(s, starts) for s in stalled["start"]) or "none of the paper's starts"
        st.caption(f"Measured here: EW (descent on f1 + f2) stalls, far from the Pareto set, from {where}: "
                   "Adam zig-zags across one task's narrow log valley in the upper half (that task's loss jumps "
                   "up and down on the right) and creeps downhill by about 0.1 in x2 per 10,000 steps. From the "
                   "start below the valleys it reaches the mean's minimum.")


def explorer_section() -> None:
    st.markdown(
        "**Two task gradients, every method's answer.** Set the angle between g1 and g2 and how much longer "
        "g2 is. Past 90 degrees the gradients *conflict*: the plain sum (EW) can then raise the smaller "
        "task's loss. The table says, for each method, whether its update lowers **both** losses to first "
        "order (descent along -u with <u, g_t> > 0 for both tasks).")
    cols = st.columns([2, 2, 4])
    angle = cols[0].slider("Angle between g1 and g2 (degrees)", 0, 180, 120,
                           help="0: the tasks agree; 90: unrelated; 180: they pull in opposite directions.")
    ratio = cols[1].select_slider(
        "Length ratio |g2| / |g1|", [0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0], value=3.0,
        help="How much larger task 2's gradient is: a dominating task is where loss scales differ.")
    methods = cols[2].multiselect(
        "Methods drawn", explorer.gradient_methods(), default=list(EXPLORER_DEFAULT),
        format_func=lab_viz.method_name, key="explorer_methods",
        help="Arrows for these methods (EW, the plain sum, is always drawn); the table lists them all.")
    jacobian = explorer.two_gradients(float(angle), float(ratio))
    updates = explorer.method_updates(jacobian)
    left, right = st.columns([3, 2])
    draw_plotly(left, lab_viz.explorer_arrows(jacobian, updates[updates["method"].isin(["ew", *methods])]),
                key="explorer_arrows")
    right.caption("Lengths differ by design: EW sums the gradients, MGDA's weights sum to 1, CAGrad keeps "
                  "its paper's scale. With Adam the length hardly matters; with SGD it is the step size. "
                  "Cosines above 0 mean the step lowers that task's loss (to first order).")
    updates_table(updates)


def updates_table(updates: pd.DataFrame) -> None:
    table = lab_viz.updates_table(updates)
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"update length": st.column_config.NumberColumn(format="%.3f"),
                                **{c: st.column_config.NumberColumn(format="%+.3f")
                                   for c in table.columns if c.startswith("cos")}})


def explorer_3d_section() -> None:
    st.markdown("**Three tasks in 3-D.** Edit the three task gradients (rows); drag the figure to turn it. "
                "Stacked like this, one gradient per row, they form the *Jacobian*: the matrix every "
                "gradient method reads to choose its update.")
    default = pd.DataFrame([[1.0, 0.0, 0.0], [-0.6, 0.8, 0.1], [-0.4, -0.5, 0.75]],
                           index=["g1", "g2", "g3"], columns=["p1", "p2", "p3"])
    cols = st.columns([2, 3])
    edited = cols[0].data_editor(default, key="explorer_3d", width="stretch",
                                 column_config={c: st.column_config.NumberColumn(
                                     c, help="Component of the task gradient along this parameter.",
                                     min_value=-10.0, max_value=10.0, step=0.1) for c in default.columns})
    jacobian = edited.to_numpy(dtype=np.float64)
    if not np.isfinite(jacobian).all():
        st.warning("Every component needs a number.")
        return
    methods = cols[1].multiselect(
        "Methods drawn", explorer.gradient_methods(), default=list(EXPLORER_DEFAULT), key="explorer_3d_methods",
        format_func=lab_viz.method_name, help="Arrows for these methods (EW is always drawn); the table lists all.")
    updates = explorer.method_updates(jacobian)
    draw_plotly(st, lab_viz.explorer_arrows_3d(jacobian, updates[updates["method"].isin(["ew", *methods])]),
                key="explorer_3d_arrows")
    updates_table(updates)


st.header("Gradient lab", anchor=False)
st.caption("Gradient conflict, seen: task gradients that point apart, and how each method resolves it. "
           "Every trajectory and arrow is computed by the same aggregator code the trainer uses.")
toy_tab, explorer_tab, three_tab = st.tabs(["Two-objective toy", "Two-gradient explorer", "Three tasks (3-D)"])
with toy_tab:
    toy_section()
with explorer_tab:
    explorer_section()
with three_tab:
    explorer_3d_section()
