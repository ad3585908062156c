"""Figures of the Gradient lab: the toy's animated trajectories, the losses along them, and the
explorer's arrows. Pure functions of DataFrames / arrays -> plotly or altair figures (tests call
them directly); method colours from :func:`mtl_core.figures.run.method_colors`, task colours from
:func:`mtl_core.figures.run.task_colors`."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mtl_core.figures import run as viz
from mtl_core.lab import problem
from mtl_core.methods import METHODS

FONT = 15  # readable on a projector
SURFACES = {"mean": "mean of f1 and f2", "f1": "f1 (task 1's loss)", "f2": "f2 (task 2's loss)"}
PATH_POINTS = 150  # points per trajectory drawn; the simulation records up to 1,001
FRAMES = 40  # animation frames
CONTOURS = 28
IMAGE_POINTS = 441  # the contour picture's resolution
GREYS = [[0.0, "rgb(90,90,90)"], [1.0, "rgb(255,255,255)"]]  # the picture's scale, for the colour bar
MAX_CHART_ROWS = 4500  # altair refuses more than 5,000 rows inline


def method_name(key: str) -> str:
    return "EW (descent on f1 + f2)" if key == "ew" else METHODS[key].name


def start_label(index: int, starts: Sequence[tuple[float, float]]) -> str:
    x1, x2 = starts[index]
    return f"start {index + 1} ({x1:g}, {x2:g})"


def _thin(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of at most ``count`` evenly spaced rows of ``values``, first and last kept."""
    return np.unique(np.linspace(0, len(values) - 1, min(count, len(values))).round().astype(int))


def contour_image(fine: np.ndarray, coarse: np.ndarray, levels: int = CONTOURS):
    """Filled contours of the surface sampled as ``fine`` (rows = x2 ascending) as a PIL image:
    ``levels`` grey bands over the colour bar's range (``coarse``, the trace's grid), dark where low,
    with white lines between bands."""
    from PIL import Image  # only the Gradient lab draws a contour image

    low, high = float(np.nanmin(coarse)), float(np.nanmax(coarse))
    band = np.clip(((fine - low) / max(high - low, 1e-12) * levels).astype(int), 0, levels - 1)
    grey = 90.0 + (255.0 - 90.0) * band / (levels - 1)  # GREYS: dark grey (low) to white (high)
    edge = np.zeros_like(band, dtype=bool)
    edge[1:, :] |= band[1:, :] != band[:-1, :]
    edge[:, 1:] |= band[:, 1:] != band[:, :-1]
    grey = np.where(edge, 250.0, grey)
    return Image.fromarray(np.flipud(grey).astype(np.uint8), mode="L").convert("RGB")


def trajectory_animation(trajectories: pd.DataFrame, grid: pd.DataFrame, starts: Sequence[tuple[float, float]], *,
                         surface: str = "mean", frames: int = FRAMES, height: int = 820) -> go.Figure:
    """Contours of ``surface`` (f1, f2 or mean) on the paper's window, the Pareto set, the average's
    minimum, the start points, and every (method, start) trajectory of ``trajectories`` (the
    :func:`mtl_core.lab.toy.simulate` table), animated with play / pause buttons and a step slider.
    Shown as at the last step until played."""
    if surface not in SURFACES:
        raise ValueError(f"surface must be one of {', '.join(SURFACES)} (got {surface!r})")
    figure = go.Figure()
    _draw_landscape(figure, grid, starts, surface)
    static = len(figure.data)
    paths = _method_paths(trajectories)
    methods = list(dict.fromkeys(trajectories["method"]))
    steps = np.sort(trajectories["step"].unique())
    frame_steps = steps[_thin(steps, frames)]
    _draw_trajectories(figure, paths, methods, steps[-1])
    moving = list(range(static, static + 2 * len(methods)))
    figure.frames = [_frame_at(paths, methods, step, moving) for step in frame_steps]
    figure.update_layout(height=height, title={"text": f"Trajectories on the {SURFACES[surface]}", "x": 0.0,
                                               "y": 0.98, "yanchor": "top"},
                         **_animation_layout(frame_steps))
    return figure


def _draw_landscape(figure: go.Figure, grid: pd.DataFrame, starts: Sequence[tuple[float, float]],
                    surface: str) -> None:
    """The still part: the surface's contours, the Pareto set, the average's minimum, the starts."""
    axis = np.sort(grid["x1"].unique())
    z = grid.pivot(index="x2", columns="x1", values=surface).to_numpy()
    # Invisible: the picture below shows the surface; this trace gives hover values and the colour bar.
    figure.add_trace(go.Contour(
        x=axis, y=axis, z=z, colorscale=GREYS, opacity=0.0, ncontours=CONTOURS,
        contours={"coloring": "fill", "showlines": False}, line={"width": 0},
        colorbar={"title": {"text": SURFACES[surface], "side": "right"}, "len": 0.9, "thickness": 14},
        hovertemplate="x1 %{x:.2f}<br>x2 %{y:.2f}<br>" + surface + " %{z:.3f}<extra></extra>", name=surface,
        showlegend=False))
    figure.add_trace(go.Scatter(
        x=list(problem.PARETO_X1), y=[problem.PARETO_X2] * 2, mode="lines", line={"color": "#000000", "width": 5},
        name="Pareto set", hoverinfo="name"))
    figure.add_trace(go.Scatter(
        x=[problem.AVERAGE_MINIMUM[0]], y=[problem.AVERAGE_MINIMUM[1]], mode="markers", name="minimum of the mean",
        marker={"symbol": "star", "size": 18, "color": "#F0E442", "line": {"color": "#000000", "width": 1.5}},
        unselected={"marker": {"opacity": 1}}))
    figure.add_trace(go.Scatter(
        x=[s[0] for s in starts], y=[s[1] for s in starts], mode="markers", name="start points",
        marker={"symbol": "circle-open", "size": 14, "color": "#000000", "line": {"width": 3}},
        unselected={"marker": {"opacity": 1}}))
    for number, (x1, x2) in enumerate(starts, start=1):
        # Black on a white box: readable on the light and the dark contours, in either app theme.
        figure.add_annotation(x=x1, y=x2, text=str(number), showarrow=False, xshift=16, yshift=16,
                              font={"size": FONT, "color": "#000000"}, bgcolor="#FFFFFF", opacity=0.9)
    # The same contours as a picture under the plot: plotly.js drops a contour (or heatmap) trace
    # from the plot while an animation plays (seen in Chromium, with or without redraw; the browser
    # test checks), and a layout image is not a trace. The trace stays for hover and the colour bar.
    fine = problem.loss_grid(IMAGE_POINTS).pivot(index="x2", columns="x1", values=surface).to_numpy()
    figure.add_layout_image(source=contour_image(fine, z), xref="x", yref="y", x=problem.BOUNDS[0], y=problem.BOUNDS[1],
                            sizex=problem.BOUNDS[1] - problem.BOUNDS[0], sizey=problem.BOUNDS[1] - problem.BOUNDS[0],
                            sizing="stretch", layer="below")


def _method_paths(trajectories: pd.DataFrame) -> dict[tuple[str, int], np.ndarray]:
    """(method, start) -> its recorded ``step, x1, x2`` rows [K, 3], in step order."""
    groups = trajectories.sort_values(["method", "start", "step"], kind="stable").groupby(["method", "start"], sort=False)
    return {key: group[["step", "x1", "x2"]].to_numpy() for key, group in groups}


def _method_traces(paths: dict[tuple[str, int], np.ndarray], method: str, step: float) -> tuple[dict, dict]:
    """One trace per method: its paths from every start up to ``step`` (NaN-separated, so a frame
    carries few traces: plotly's cost is per trace), and the current points."""
    xs, ys, heads = [], [], []
    for (key, _), path in paths.items():
        if key != method:
            continue
        upto = path[: int(np.searchsorted(path[:, 0], step, side="right"))]
        heads.append(upto[-1])
        upto = upto[_thin(upto, PATH_POINTS)]
        xs += [upto[:, 1], [np.nan]]
        ys += [upto[:, 2], [np.nan]]
    heads = np.array(heads)
    # numpy arrays travel as base64 (plotly 7), a tenth of the JSON numbers' size
    return {"x": np.concatenate(xs), "y": np.concatenate(ys)}, {"x": heads[:, 1], "y": heads[:, 2]}


def _draw_trajectories(figure: go.Figure, paths: dict[tuple[str, int], np.ndarray], methods: list[str],
                       last_step: float) -> None:
    """Each method's lines (one legend entry), then each method's current points, as at ``last_step``."""
    colors = viz.method_colors()
    for method in methods:
        line, _ = _method_traces(paths, method, last_step)
        figure.add_trace(go.Scatter(
            **line, mode="lines", name=method_name(method), legendgroup=method,
            line={"color": colors[method], "width": 3},
            hovertemplate=f"{method_name(method)}<br>x1 %{{x:.3f}}<br>x2 %{{y:.3f}}<extra></extra>"))
    for method in methods:
        _, head = _method_traces(paths, method, last_step)
        figure.add_trace(go.Scatter(
            **head, mode="markers", legendgroup=method, showlegend=False, name=method_name(method),
            marker={"size": 13, "color": colors[method], "line": {"color": "#000000", "width": 1.5}},
            unselected={"marker": {"opacity": 1}}, hoverinfo="skip"))


def _frame_at(paths: dict[tuple[str, int], np.ndarray], methods: list[str], step: float,
              moving: list[int]) -> go.Frame:
    """The animation's frame at ``step``: new data for the ``moving`` traces (lines, then points)."""
    pairs = [_method_traces(paths, method, step) for method in methods]
    data = [go.Scatter(**line) for line, _ in pairs] + [go.Scatter(**head) for _, head in pairs]
    return go.Frame(data=data, traces=moving, name=str(int(step)))


def _animation_layout(frame_steps: np.ndarray) -> dict:
    """Axes on the paper's window, the legend, and play / pause with a step slider under the plot."""
    play = {"frame": {"duration": 150, "redraw": True}, "transition": {"duration": 0}, "fromcurrent": False,
            "mode": "immediate"}
    pause = {"frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}, "mode": "immediate"}
    return {
        "font": {"size": FONT}, "margin": {"l": 60, "r": 20, "t": 60, "b": 190},
        # No grid: the contours map the plane, and the theme's grid lines crossed the picture.
        "xaxis": {"title": {"text": "x1 (parameter 1, no unit)"}, "range": list(problem.BOUNDS), "constrain": "domain",
                  "showgrid": False},
        "yaxis": {"title": {"text": "x2 (parameter 2, no unit)"}, "range": list(problem.BOUNDS), "scaleanchor": "x",
                  "showgrid": False},
        "legend": {"orientation": "h", "y": -0.36, "yanchor": "top", "x": 0.0},
        # Play / pause left of the step slider, under the x axis (above the plot they sat under
        # plotly's toolbar); the slider's "Adam step N" label starts where the buttons end.
        "updatemenus": [{
            "type": "buttons", "direction": "left", "x": 0.0, "y": -0.1, "xanchor": "left", "yanchor": "top",
            "pad": {"t": 38, "r": 0}, "showactive": False, "font": {"size": FONT},
            "buttons": [{"label": "▶ Play", "method": "animate", "args": [None, play]},
                        {"label": "❚❚ Pause", "method": "animate", "args": [[None], pause]}],
        }],
        "sliders": [{
            "active": len(frame_steps) - 1, "x": 0.26, "y": -0.1, "len": 0.74, "yanchor": "top",
            # At the slider's right end: on the left it lay over the centred x axis title.
            "currentvalue": {"prefix": "Adam step ", "font": {"size": FONT}, "xanchor": "right"},
            "pad": {"t": 10}, "transition": {"duration": 0}, "font": {"size": 12},
            "steps": [{"label": f"{int(s):,}", "method": "animate", "args": [[str(int(s))], pause]}
                      for s in frame_steps],
        }],
    }


def add_click_targets(figure: go.Figure, spacing: float = 0.5) -> None:
    """Invisible points every ``spacing`` over the window: clicking one selects it, which the page
    turns into a new start point (a plotly selection needs a point under the pointer)."""
    axis = np.arange(problem.BOUNDS[0], problem.BOUNDS[1] + 1e-9, spacing)
    x1, x2 = np.meshgrid(axis, axis)
    figure.add_trace(go.Scatter(
        x=x1.ravel(), y=x2.ravel(), mode="markers", marker={"size": 9, "opacity": 0}, showlegend=False,
        name="click to start here", hovertemplate="click to start here: (%{x:g}, %{y:g})<extra></extra>"))
    figure.update_layout(clickmode="event+select", dragmode="zoom")


def losses_along(trajectories: pd.DataFrame) -> pd.DataFrame:
    """Long table of f1, f2 and their mean along each trajectory: ``method, start, step, loss, value``."""
    frame = trajectories.assign(mean=0.5 * (trajectories["f1"] + trajectories["f2"]))
    return frame.melt(id_vars=["method", "start", "step"], value_vars=["f1", "f2", "mean"],
                      var_name="loss", value_name="value")


# Runs are named at length ("#4 pcgrad · hps · multidigits #4"): whole, where vega's default limit
# cut them to "…". (Under the chart, the legend took the height of a fixed-height chart's plot.)
RUN_LEGEND = alt.Legend(labelLimit=0)


def trajectory_losses_chart(trajectories: pd.DataFrame, starts: Sequence[tuple[float, float]], *,
                            width: int = 340, height: int = 150) -> alt.FacetChart:
    """f1, f2 and their mean (rows) along each trajectory: x = Adam step, one line per (method,
    start), the method's colour, the start's dash."""
    data = losses_along(trajectories)
    lines = max(1, data.groupby(["method", "start", "loss"]).ngroups)
    data = viz.downsample(data, max(20, MAX_CHART_ROWS // lines), by=["method", "start", "loss"])
    data["method_name"] = data["method"].map(method_name)
    data["start_name"] = [start_label(s, starts) for s in data["start"]]
    methods = list(dict.fromkeys(trajectories["method"]))
    colors = viz.method_colors()
    names = [method_name(m) for m in methods]
    dashes = [[1, 0], [6, 3], [2, 2], [8, 3, 2, 3], [12, 4], [3, 5]]
    start_names = [start_label(i, starts) for i in sorted(trajectories["start"].unique())]
    return alt.Chart(data, width=width, height=height).mark_line(strokeWidth=2.5).encode(
        x=alt.X("step:Q", title="Adam step"),
        y=alt.Y("value:Q", title="loss (no unit)", scale=alt.Scale(zero=False)),
        color=alt.Color("method_name:N", title="method", sort=names,
                        scale=alt.Scale(domain=names, range=[colors[m] for m in methods])),
        strokeDash=alt.StrokeDash("start_name:N", title="start", sort=start_names,
                                  scale=alt.Scale(domain=start_names, range=dashes[: len(start_names)])),
        tooltip=["method_name:N", "start_name:N", "loss:N", alt.Tooltip("step:Q", format=","),
                 alt.Tooltip("value:Q", format=".4f")],
    ).facet(row=alt.Row("loss:N", title=None, sort=["f1", "f2", "mean"],
                        header=alt.Header(labelFontSize=FONT, labelOrient="top", labelAnchor="start"))
    ).resolve_scale(y="independent").configure_axis(labelFontSize=13, titleFontSize=FONT).configure_legend(
        labelFontSize=13, titleFontSize=FONT, orient="bottom", direction="vertical", columns=2, labelLimit=260)


# --- the explorer --------------------------------------------------------------------------------

def _task_names(n: int) -> list[str]:
    return [f"g{t + 1}" for t in range(n)]


def _arrows(jacobian: np.ndarray, updates: pd.DataFrame, columns: tuple[str, ...], *, task_width: float,
            method_width: float) -> list[tuple[str, np.ndarray, str, float]]:
    """(label, vector, colour, line width) of every task gradient (task colours) and every method's
    finite update (method colours): the arrows both explorer figures draw."""
    names = _task_names(len(jacobian))
    task_colors, colors = viz.task_colors(names), viz.method_colors()
    arrows = [(name, vector, task_colors[name], task_width)
              for name, vector in zip(names, np.asarray(jacobian, dtype=np.float64), strict=True)]
    for row in updates.itertuples():
        vector = np.array([getattr(row, column) for column in columns])
        if np.isfinite(vector).all():
            arrows.append((method_name(row.method), vector, colors[row.method], method_width))
    return arrows


def explorer_arrows(jacobian: np.ndarray, updates: pd.DataFrame, *, height: int = 560) -> go.Figure:
    """2-D: the task gradients g1, g2 (task colours, thick) and every method's update (method
    colours) as arrows from the origin, on equal axes."""
    arrows = _arrows(jacobian, updates, ("u1", "u2"), task_width=5, method_width=2.5)
    extent = max(1e-9, max(float(np.abs(v).max()) for _, v, _, _ in arrows)) * 1.15
    figure = go.Figure()
    for name, vector, color, width in arrows:
        # The line carries the legend entry and hover; an annotation draws the head.
        figure.add_trace(go.Scatter(x=[0, vector[0]], y=[0, vector[1]], mode="lines", name=name,
                                    line={"color": color, "width": width},
                                    hovertemplate=f"{name}<br>(%{{x:.3f}}, %{{y:.3f}})<extra></extra>"))
        figure.add_annotation(x=vector[0], y=vector[1], ax=0, ay=0, xref="x", yref="y", axref="x", ayref="y",
                              showarrow=True, arrowhead=2, arrowsize=4.0 / width, arrowwidth=width, arrowcolor=color,
                              text="")  # arrowsize scales with the width: one head size for all
    figure.update_layout(
        height=height, font={"size": FONT}, margin={"l": 60, "r": 20, "t": 50, "b": 50},
        title={"text": "Task gradients and each method's update (descent goes the opposite way)", "x": 0.0},
        xaxis={"title": {"text": "parameter 1 (gradient units)"}, "range": [-extent, extent], "zeroline": True},
        yaxis={"title": {"text": "parameter 2 (gradient units)"}, "range": [-extent, extent], "scaleanchor": "x",
               "zeroline": True},
        legend={"font": {"size": 13}})
    return figure


def explorer_arrows_3d(jacobian: np.ndarray, updates: pd.DataFrame, *, height: int = 620) -> go.Figure:
    """3-D: three task gradients and every method's update as arrows (line + cone head)."""
    arrows = _arrows(jacobian, updates, ("u1", "u2", "u3"), task_width=9, method_width=5)
    extent = max(1e-9, max(float(np.linalg.norm(v)) for _, v, _, _ in arrows))
    figure = go.Figure()
    for name, vector, color, width in arrows:
        figure.add_trace(go.Scatter3d(x=[0, vector[0]], y=[0, vector[1]], z=[0, vector[2]], mode="lines", name=name,
                                      legendgroup=name, line={"color": color, "width": width},
                                      hovertemplate=f"{name}<br>(%{{x:.3f}}, %{{y:.3f}}, %{{z:.3f}})<extra></extra>"))
        length = float(np.linalg.norm(vector))
        if length > 0:
            head = vector / length * 0.08 * extent
            figure.add_trace(go.Cone(x=[vector[0]], y=[vector[1]], z=[vector[2]], u=[head[0]], v=[head[1]], w=[head[2]],
                                     anchor="tip", sizemode="absolute", sizeref=0.08 * extent, showscale=False,
                                     colorscale=[[0, color], [1, color]], legendgroup=name, showlegend=False,
                                     hoverinfo="skip"))
    axis = {"range": [-extent, extent], "zeroline": True}
    figure.update_layout(
        height=height, font={"size": FONT}, margin={"l": 0, "r": 0, "t": 50, "b": 0},
        title={"text": "Three task gradients and each method's update (drag to turn)", "x": 0.0},
        scene={"xaxis": {**axis, "title": {"text": "p1"}}, "yaxis": {**axis, "title": {"text": "p2"}},
               "zaxis": {**axis, "title": {"text": "p3"}}, "aspectmode": "cube"},
        legend={"font": {"size": 13}})
    return figure


def updates_table(updates: pd.DataFrame) -> pd.DataFrame:
    """The explorer's table as a person reads it: method, length, cosines, decreases every loss."""
    cosines = [c for c in updates.columns if c.startswith("cos_g")]
    table = pd.DataFrame({"method": updates["method"].map(method_name), "update length": updates["length"]})
    for column in cosines:
        table[f"cos(update, {column[4:]})"] = updates[column]
    table["decreases every loss (1st order)"] = updates["decreases_all"].map({True: "yes", False: "no"})
    table["note"] = updates["message"].fillna("")
    return table


# --- conflict diagnostics of stored runs ---------------------------------------------------------

def _run_scale(colors: dict[str, str], runs: Sequence[str]) -> alt.Scale:
    return alt.Scale(domain=list(runs), range=[colors[r] for r in runs])


def conflict_share_chart(shares: pd.DataFrame, colors: dict[str, str]) -> alt.Chart:
    """Share of probes where each task pair's gradients conflict (cosine < 0): one bar per (pair,
    run). ``shares``: ``run, pair, share, probes, mean_cosine`` (:func:`mtl_core.engine.conflict.conflict_share`
    with a ``run`` column); ``colors``: run -> colour."""
    runs = list(dict.fromkeys(shares["run"]))
    encoding = {
        "x": alt.X("share:Q", title="probes in conflict (cosine < 0), %", scale=alt.Scale(domain=[0, 1]),
                   axis=alt.Axis(format="%")),
        "y": alt.Y("pair:N", title="task pair"),
        "color": alt.Color("run:N", title="run", scale=_run_scale(colors, runs), sort=runs,
                           legend=RUN_LEGEND if len(runs) > 1 else None),
        "tooltip": ["run:N", "pair:N", alt.Tooltip("share:Q", format=".0%"), "probes:Q",
                    alt.Tooltip("mean_cosine:Q", format="+.3f", title="mean cosine")],
    }
    if len(runs) > 1:  # side by side within a pair's band
        encoding["yOffset"] = alt.YOffset("run:N", sort=runs)
    return alt.Chart(shares, height=alt.Step(max(22, 40 // len(runs)))).mark_bar().encode(**encoding).properties(
        title="How often each pair's gradients conflict")


def cosine_runs_chart(pairs: pd.DataFrame, colors: dict[str, str]) -> alt.FacetChart:
    """Cosine between each pair's gradients over training, one line per run, one panel per pair;
    the zero line marks where conflict starts. ``pairs``: ``run, step, pair, value``."""
    runs = list(dict.fromkeys(pairs["run"]))
    data = viz.downsample(pairs, 300, by=["run", "pair"])
    lines = alt.Chart().mark_line(strokeWidth=2).encode(
        x=alt.X("step:Q", title="training step"),
        y=alt.Y("value:Q", title="gradient cosine", scale=alt.Scale(domain=[-1, 1])),
        color=alt.Color("run:N", title="run", scale=_run_scale(colors, runs), sort=runs, legend=RUN_LEGEND),
        tooltip=["run:N", "pair:N", "step:Q", alt.Tooltip("value:Q", format="+.3f")])
    zero = alt.Chart().mark_rule(color="#444444", strokeDash=[4, 3]).encode(y=alt.datum(0))
    return alt.layer(lines, zero, data=data).properties(width=320, height=170).facet(
        facet=alt.Facet("pair:N", title=None), columns=3).properties(title="Gradient cosine over training")


def norm_ratio_chart(norms: pd.DataFrame, colors: dict[str, str]) -> alt.Chart:
    """Largest / smallest task-gradient norm on each probe, one line per run (log scale): 1 means
    balanced, 10 means one task's gradient is ten times another's. ``norms``: ``run, step, ratio``."""
    runs = list(dict.fromkeys(norms["run"]))
    data = norms.drop_duplicates(["run", "step"])
    # A run without probes (a single-task baseline) gives an empty, object-typed column.
    data = data.assign(ratio=pd.to_numeric(data["ratio"], errors="coerce"))
    data = data[np.isfinite(data["ratio"])]
    data = viz.downsample(data, 400, by="run")
    return alt.Chart(data, height=240).mark_line(strokeWidth=2).encode(
        x=alt.X("step:Q", title="training step"),
        y=alt.Y("ratio:Q", title="norm ratio, max / min", scale=alt.Scale(type="log")),
        color=alt.Color("run:N", title="run", scale=_run_scale(colors, runs), sort=runs,
                        legend=RUN_LEGEND if len(runs) > 1 else None),
        tooltip=["run:N", "step:Q", alt.Tooltip("ratio:Q", format=".2f")],
    ).properties(title="Gradient-norm ratio: does one task dominate?")


def norm_share_chart(norms: pd.DataFrame, task_colors: dict[str, str]) -> alt.Chart:
    """Each task's share of the summed gradient norm on each probe (one run), stacked to 100 %."""
    data = viz.downsample(norms, 300, by="task")
    tasks = [t for t in task_colors if t in set(data["task"])]
    return alt.Chart(data, height=240).mark_area(opacity=0.85).encode(
        x=alt.X("step:Q", title="training step"),
        y=alt.Y("share:Q", title="share of norm, %", stack="normalize", axis=alt.Axis(format="%")),
        color=alt.Color("task:N", title="task", scale=viz.color_scale(task_colors, tasks), sort=tasks),
        tooltip=["task:N", "step:Q", alt.Tooltip("share:Q", format=".0%"), alt.Tooltip("norm:Q", format=".3g")],
    ).properties(title="Each task's share of the gradient norm")


def alignment_runs_chart(alignment: pd.DataFrame, colors: dict[str, str], task_colors: dict[str, str]) -> alt.Chart:
    """Mean cos(update, g_t) per task and run: does each run's update descend every task's loss?
    ``alignment``: ``run, task, value`` (the mean over probes)."""
    runs = list(dict.fromkeys(alignment["run"]))
    return alt.Chart(alignment, height=alt.Step(max(22, 40 // len(runs)))).mark_bar().encode(
        x=alt.X("value:Q", title="mean cos(update, task gradient)", scale=alt.Scale(domain=[-1, 1])),
        y=alt.Y("task:N", title="task"),
        yOffset=alt.YOffset("run:N", sort=runs),
        color=alt.Color("run:N", title="run", scale=_run_scale(colors, runs), sort=runs, legend=RUN_LEGEND),
        tooltip=["run:N", "task:N", alt.Tooltip("value:Q", format="+.3f")],
    ).properties(title="How directly each run's update descends each task")


def layer_heatmap(summary: pd.DataFrame, *, value: str = "mean_cosine") -> alt.LayerChart:
    """Layers (rows, the network's order) x task pairs: mean gradient cosine on each layer's
    parameters (red: the layer carries conflict), labelled. ``summary``: :func:`layer_summary`."""
    layers = list(dict.fromkeys(summary["layer"]))
    base = alt.Chart(summary).encode(
        x=alt.X("pair:N", title="task pair", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("layer:N", title="shared layer", sort=layers, axis=alt.Axis(labelLimit=0)))
    cells = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color(f"{value}:Q", title="mean cosine", scale=alt.Scale(domain=[-1, 1], domainMid=0,
                                                                            scheme="redblue")),
        tooltip=["layer:N", "pair:N", alt.Tooltip("mean_cosine:Q", format="+.3f"),
                 alt.Tooltip("conflict_share:Q", format=".0%", title="probes in conflict")])
    labels = base.mark_text(fontSize=14).encode(
        text=alt.Text(f"{value}:Q", format="+.2f"),
        color=alt.condition(f"abs(datum.{value}) > 0.6", alt.value("white"), alt.value("black")))
    # Band heights as steps: a fixed pixel height collapsed when Streamlit stretched the width.
    return alt.layer(cells, labels).properties(height=alt.Step(36),
                                               title="Conflict by shared layer (mean cosine)")


def layer_history_heatmap(layers: pd.DataFrame, pair: str) -> alt.Chart:
    """One pair's cosine on each shared layer (rows) at each probe (columns, in step order)."""
    data = layers[layers["pair"] == pair]
    order = list(dict.fromkeys(data["layer"]))
    return alt.Chart(data, height=alt.Step(36)).mark_rect().encode(
        x=alt.X("step:O", title="training step (probes)", axis=alt.Axis(labelOverlap="greedy", labelAngle=0)),
        y=alt.Y("layer:N", title="shared layer", sort=order, axis=alt.Axis(labelLimit=0)),
        color=alt.Color("value:Q", title="cosine", scale=alt.Scale(domain=[-1, 1], domainMid=0, scheme="redblue")),
        tooltip=["layer:N", "step:Q", alt.Tooltip("value:Q", format="+.3f")],
    ).properties(title=f"{pair}: cosine per layer over training")
