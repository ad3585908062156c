"""The survey's map of multi-task learning as a figure: every registered method and architecture is
a leaf, placed where Crawshaw's survey ("Multi-Task Learning with Deep Neural Networks: A Survey",
arXiv:2009.09796, 2020) files it, next to a few ideas the survey describes that are not built here.

Pure functions (no streamlit): ``taxonomy_nodes()`` lists the nodes, ``taxonomy_figure()`` draws them
as a plotly treemap. Both read the registries, so a new method or architecture appears by itself.
"""

from __future__ import annotations

import re
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


# Colours by kind: built things in blues and greens, described-only in grey, each with the text
# colour that reads on it. The figure brings its own text colours because Streamlit's plotly theme
# sets a dark page's text to white, which vanished on the light root and family tiles.
KIND_COLORS = {"root": "#e4e9f0", "branch": "#cdd8e6", "method": "#3b6ea5",
               "architecture": "#2e7d32", "described": "#b5aca7"}
KIND_TEXT = {"root": "#1f2a36", "branch": "#1f2a36", "method": "white", "architecture": "white",
             "described": "#1f2a36"}
# Tile areas: an architecture's name is long ("Multi-gate Mixture-of-Experts"), and at the area of
# a method's tile plotly shrank it to a few pixels; twice the area keeps it readable.
KIND_AREA = {"method": 1.0, "architecture": 2.0, "described": 1.5}
# A survey part with nothing built here (task relationship learning) would be a sliver at the
# bottom of the map: its only, described-only, idea gets the area of a small family.
ALONE_AREA = 5.0
LABEL_FONT_SIZE = 18  # the largest; plotly shrinks a label only where its tile is too small
WRAP_AT = 12  # characters per line of a leaf's label


def tile_label(label: str, width: int = WRAP_AT) -> str:
    """A leaf's label as its tile shows it: a name with an acronym, "Multi-gate Mixture-of-Experts
    (MMoE)", by its acronym (the hover gives the full name), and broken into lines of about
    ``width`` characters (plotly's "<br>") so that it fills the tile's height instead of shrinking
    to fit its width."""
    acronym = re.fullmatch(r".{12,}\(([A-Za-z0-9-]+)\)", label)
    if acronym and any(ch.isupper() for ch in acronym.group(1)):
        label = acronym.group(1)
    lines: list[str] = []
    for word in label.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "<br>".join(lines)


def tile_areas(nodes: list[TaxonomyNode]) -> list[float]:
    """Each node's own area (branches 0: plotly adds their children's)."""
    children: dict[str, int] = {}
    for node in nodes:
        children[node.parent] = children.get(node.parent, 0) + 1
    return [ALONE_AREA if node.kind == "described" and children[node.parent] == 1
            else KIND_AREA.get(node.kind, 0.0) for node in nodes]


def taxonomy_figure(nodes: list[TaxonomyNode] | None = None, *, height: int = 620) -> go.Figure:
    """The map as a treemap: click a family to zoom in (plotly's own interaction), hover a leaf
    for its one-line summary."""
    nodes = taxonomy_nodes() if nodes is None else nodes
    figure = go.Figure(go.Treemap(
        ids=[node.id for node in nodes],
        labels=[tile_label(node.label) if node.kind in KIND_AREA else node.label for node in nodes],
        parents=[node.parent for node in nodes],
        values=tile_areas(nodes),
        branchvalues="remainder",
        customdata=[[node.kind, node.key, node.note, node.label] for node in nodes],
        marker={"colors": [KIND_COLORS[node.kind] for node in nodes]},
        textfont={"size": LABEL_FONT_SIZE, "color": [KIND_TEXT[node.kind] for node in nodes]},
        hovertemplate="<b>%{customdata[3]}</b><br>%{customdata[2]}<extra></extra>",
        tiling={"pad": 2, "packing": "binary"},
        maxdepth=4,
    ))
    figure.update_layout(height=height, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    return figure
