"""The survey's map of multi-task learning as a figure: every registered method and architecture is
a leaf, placed where Crawshaw's survey ("Multi-Task Learning with Deep Neural Networks: A Survey",
arXiv:2009.09796, 2020) files it, next to a few ideas the survey describes that are not built here.

Pure functions (no streamlit): ``taxonomy_nodes()`` lists the nodes, ``taxonomy_figure()`` draws them
as a plotly treemap. Both read the registries, so a new method or architecture appears by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import plotly.graph_objects as go

from mtl_core.architectures import ARCHITECTURES
from mtl_core.methods import METHODS

NodeKind = Literal["root", "branch", "method", "architecture", "described"]

ROOT = "Multi-task learning"
# The survey's three parts, and where each of our registry categories sits in them.
ARCHITECTURES_BRANCH = "Architectures"
OPTIMISATION_BRANCH = "Optimisation"
RELATIONSHIPS_BRANCH = "Task relationship learning"
METHOD_GROUPS = {  # our method category -> the survey's optimisation family
    "loss weighting": "Loss weighting",
    "gradient surgery": "Gradient modulation",
    "gradient alignment": "Gradient modulation",
    "gradient balancing": "Gradient modulation",
    "conflict-free": "Gradient modulation",
    "multi-objective": "Multi-objective optimisation",
}
# Ideas the survey covers that the playground describes but does not implement: (label, parent, note).
DESCRIBED_ONLY = (
    ("Knowledge distillation", OPTIMISATION_BRANCH,
     "Single-task teachers train one multi-task student, e.g. policy distillation in reinforcement learning."),
    ("Meta-learning", OPTIMISATION_BRANCH,
     "Learn how to learn across tasks, e.g. a shared initialisation that adapts to each task quickly."),
    ("NAS-based sharing", ARCHITECTURES_BRANCH,
     "Search which layers the tasks share, e.g. branched networks grown or pruned by search."),
    ("Taskonomy at scale", RELATIONSHIPS_BRANCH,
     "Measure transfer between dozens of vision tasks and pick the best set of source tasks."),
)


@dataclass(frozen=True)
class TaxonomyNode:
    id: str  # unique: "method:pcgrad", "arch:hps", "described:Meta-learning", "branch:Architectures"
    label: str
    parent: str  # the parent's id; "" for the root
    kind: NodeKind
    key: str = ""  # the registry key for a method or architecture
    note: str = ""  # hover text


def _branch_id(label: str) -> str:
    return f"branch:{label}"


def taxonomy_nodes() -> list[TaxonomyNode]:
    """Root, the survey's branches, the families below them, then one leaf per registry entry."""
    root = _branch_id(ROOT)
    nodes = [TaxonomyNode(root, ROOT, "", "root")]
    for branch in (ARCHITECTURES_BRANCH, OPTIMISATION_BRANCH, RELATIONSHIPS_BRANCH):
        nodes.append(TaxonomyNode(_branch_id(branch), branch, root, "branch"))

    families: dict[str, str] = {}  # family label -> its id

    def family(label: str, parent: str) -> str:
        if label not in families:
            families[label] = f"{parent}/{label}"
            nodes.append(TaxonomyNode(families[label], label, parent, "branch"))
        return families[label]

    for arch in ARCHITECTURES:
        parent = family(arch.category.capitalize(), _branch_id(ARCHITECTURES_BRANCH))
        nodes.append(TaxonomyNode(f"arch:{arch.key}", arch.name, parent, "architecture",
                                  key=arch.key, note=arch.summary))
    for method in METHODS:
        group = METHOD_GROUPS.get(method.category, method.category.capitalize())
        parent = family(group, _branch_id(OPTIMISATION_BRANCH))
        nodes.append(TaxonomyNode(f"method:{method.key}", method.name, parent, "method",
                                  key=method.key, note=method.summary))
    for label, branch, note in DESCRIBED_ONLY:
        nodes.append(TaxonomyNode(f"described:{label}", f"{label} (described only)",
                                  _branch_id(branch), "described", note=note))
    return nodes


# Colours by kind: built things in the app's blues and greens, described-only in grey.
KIND_COLORS = {"root": "#f0f2f6", "branch": "#dbe4f0", "method": "#4c78a8",
               "architecture": "#54a24b", "described": "#bab0ac"}


def taxonomy_figure(nodes: list[TaxonomyNode] | None = None, *, height: int = 560) -> go.Figure:
    """The map as a treemap: click a family to zoom in (plotly's own interaction), hover a leaf
    for its one-line summary."""
    nodes = taxonomy_nodes() if nodes is None else nodes
    figure = go.Figure(go.Treemap(
        ids=[node.id for node in nodes],
        labels=[node.label for node in nodes],
        parents=[node.parent for node in nodes],
        customdata=[[node.kind, node.key, node.note] for node in nodes],
        marker={"colors": [KIND_COLORS[node.kind] for node in nodes]},
        hovertemplate="<b>%{label}</b><br>%{customdata[2]}<extra></extra>",
        textfont={"size": 13},
        tiling={"pad": 2},
        maxdepth=4,
    ))
    figure.update_layout(height=height, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    return figure
