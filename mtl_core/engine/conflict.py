"""Gradient-conflict statistics: per-layer cosines on a probe step (for the trainer), and the
summaries the conflict diagnostics show for stored runs.

Two gradients *conflict* when their cosine is negative (Yu et al., "Gradient Surgery for
Multi-Task Learning", NeurIPS 2020, arXiv:2001.06782, Definition 1): a step along their sum then
raises one task's loss to first order, unless the other's gradient is small. Which layers carry
the conflict is measured by the same cosine restricted to each layer's parameters (the shared
trunk's modules: a parameter's name without its last component).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

LAYER_SPLIT = "layer"  # the store's split for per-layer cosines: task = the pair, metric = the layer
PAIR_SEPARATOR = " · "  # between the two tasks' names in a pair's label


def pair_label(first: str, second: str) -> str:
    return f"{first}{PAIR_SEPARATOR}{second}"


# --- on a probe step (torch; the trainer) --------------------------------------------------------

def layer_groups(named_parameters: Iterable[tuple[str, object]], shared: Sequence[object]) -> list[tuple[str, list[tuple[int, int]]]]:
    """The shared parameters grouped by layer (module path), as column ranges of the flat Jacobian
    ``task_jacobian(losses, shared)`` builds: ``[(layer, [(begin, end), ...]), ...]`` in order."""
    names = {id(param): name for name, param in named_parameters}
    groups: dict[str, list[tuple[int, int]]] = {}
    offset = 0
    for param in shared:
        name = names.get(id(param), f"shared.{len(groups)}")
        layer = name.rsplit(".", 1)[0] if "." in name else name
        size = param.numel()
        ranges = groups.setdefault(layer, [])
        if ranges and ranges[-1][1] == offset:
            ranges[-1] = (ranges[-1][0], offset + size)  # weight then bias: one contiguous range
        else:
            ranges.append((offset, offset + size))
        offset += size
    return list(groups.items())


def layer_cosines(jacobian, groups: Sequence[tuple[str, list[tuple[int, int]]]], tasks: Sequence[str],
                  eps: float = 1e-12) -> dict[str, dict[str, float]]:
    """``{layer: {pair: cos(g_i, g_j) on that layer's parameters}}`` from a ``[T, P]`` Jacobian.
    One small Gram matrix per layer: cheap next to the T backward passes that made the Jacobian.
    A task whose gradient is zero on a layer has cosine 0 there (no direction)."""
    import torch  # here only: the pages and figures import this module for its summaries, torch-free

    pairs = list(combinations(range(len(tasks)), 2))
    result: dict[str, dict[str, float]] = {}
    for layer, ranges in groups:
        part = torch.cat([jacobian[:, begin:end] for begin, end in ranges], dim=1) if len(ranges) > 1 \
            else jacobian[:, ranges[0][0]:ranges[0][1]]
        gram = (part @ part.T).double()
        norms = gram.diagonal().clamp_min(0).sqrt().clamp_min(eps)
        cosine = (gram / (norms[:, None] * norms[None, :])).clamp(-1.0, 1.0).tolist()
        result[layer] = {pair_label(tasks[i], tasks[j]): cosine[i][j] for i, j in pairs}
    return result


# --- summaries of stored runs (pandas; the pages) -------------------------------------------------

def cosine_pairs(matrices: pd.DataFrame, tasks: Sequence[str]) -> pd.DataFrame:
    """``step, pair, value``: each probe's cosine per task pair (the upper triangle, in task order),
    one row per (step, pair); non-finite cosines are left out.

    ``matrices`` has columns ``step, value`` (and ``name``: only the "cosine" rows are read), each
    value a T x T nested list in ``tasks`` order: the store's "cosine" matrices.
    """
    cosine = matrices[matrices["name"] == "cosine"] if "name" in matrices.columns else matrices
    rows = []
    pairs = list(combinations(range(len(tasks)), 2))
    for step, matrix in zip(cosine["step"], cosine["value"], strict=True):
        for i, j in pairs:
            value = matrix[i][j]
            if value is None or not math.isfinite(value):
                continue
            rows.append((int(step), pair_label(tasks[i], tasks[j]), float(value)))
    return pd.DataFrame(rows, columns=["step", "pair", "value"])


def conflict_share(pairs: pd.DataFrame) -> pd.DataFrame:
    """``pair, probes, conflicts, share, mean_cosine``: how often each pair's gradients conflicted
    (cosine < 0) over the probes, and their mean cosine."""
    if pairs.empty:
        return pd.DataFrame(columns=["pair", "probes", "conflicts", "share", "mean_cosine"])
    grouped = pairs.groupby("pair", sort=False)["value"]
    table = pd.DataFrame({"probes": grouped.size(), "conflicts": grouped.apply(lambda v: int((v < 0).sum())),
                          "mean_cosine": grouped.mean()}).reset_index()
    table["share"] = table["conflicts"] / table["probes"]
    return table[["pair", "probes", "conflicts", "share", "mean_cosine"]]


def norm_ratios(scalars: pd.DataFrame) -> pd.DataFrame:
    """``step, task, norm, share, ratio``: each task's gradient norm on the probe steps, its share
    of the tasks' total, and the largest-to-smallest ratio at that step (``ratio``, one value per
    step repeated on its rows): which task dominates the shared parameters, and by how much."""
    norms = scalars[(scalars["metric"] == "grad_norm")] if "metric" in scalars.columns else scalars
    if norms.empty:
        return pd.DataFrame(columns=["step", "task", "norm", "share", "ratio"])
    norms = norms[["step", "task", "value"]].rename(columns={"value": "norm"})
    total = norms.groupby("step")["norm"].transform("sum")
    largest = norms.groupby("step")["norm"].transform("max")
    smallest = norms.groupby("step")["norm"].transform("min")
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, norms["norm"] / total, np.nan)
        ratio = np.where(smallest > 0, largest / smallest, np.inf)
    return norms.assign(share=share, ratio=ratio).reset_index(drop=True)


def dominance(norms: pd.DataFrame) -> pd.DataFrame:
    """``task, dominant_share, mean_share``: the share of probes where each task had the largest
    gradient, and its mean share of the total norm."""
    if norms.empty:
        return pd.DataFrame(columns=["task", "dominant_share", "mean_share"])
    top = norms.loc[norms.groupby("step")["norm"].idxmax(), "task"]
    probes = norms["step"].nunique()
    counts = top.value_counts()
    tasks = list(dict.fromkeys(norms["task"]))
    return pd.DataFrame({"task": tasks, "dominant_share": [counts.get(t, 0) / probes for t in tasks],
                         "mean_share": [norms.loc[norms["task"] == t, "share"].mean() for t in tasks]})


def layer_frame(scalars: pd.DataFrame) -> pd.DataFrame:
    """``step, layer, pair, value``: the per-layer cosines a run recorded (split "layer")."""
    rows = scalars[scalars["split"] == LAYER_SPLIT] if "split" in scalars.columns else scalars.iloc[0:0]
    return pd.DataFrame({"step": rows["step"].astype("int64"), "layer": rows["metric"], "pair": rows["task"],
                         "value": rows["value"]}).reset_index(drop=True)


def layer_summary(layers: pd.DataFrame) -> pd.DataFrame:
    """``layer, pair, mean_cosine, conflict_share``: per layer and pair, over the probes; layers in
    the order the network has them."""
    if layers.empty:
        return pd.DataFrame(columns=["layer", "pair", "mean_cosine", "conflict_share"])
    grouped = layers.groupby(["layer", "pair"], sort=False)["value"]
    return pd.DataFrame({"mean_cosine": grouped.mean(),
                         "conflict_share": grouped.apply(lambda v: float((v < 0).mean()))}).reset_index()
