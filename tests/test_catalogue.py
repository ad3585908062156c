"""The catalogue's metadata is complete and every Try it set-up is valid and trains; the map of the
field holds every registered method and architecture exactly once."""

from __future__ import annotations

import functools

import pytest

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import RunConfig
from mtl_core.figures.taxonomy import DESCRIBED_ONLY, taxonomy_figure, taxonomy_nodes
from mtl_core.methods import METHODS
from mtl_core.registry import Entry

ENTRIES = [*(("method", m) for m in METHODS), *(("arch", a) for a in ARCHITECTURES)]
IDS = [f"{owner}:{entry.key}" for owner, entry in ENTRIES]


def sentence(text: object) -> bool:
    return isinstance(text, str) and len(text) > 30 and text.rstrip().endswith(".")


@pytest.mark.parametrize("owner, entry", ENTRIES, ids=IDS)
def test_every_entry_has_complete_metadata(owner: str, entry: Entry):
    assert entry.name and sentence(entry.summary)
    for knob in entry.knobs:
        assert knob.label and knob.help, f"{entry.key}.{knob.name} lacks a label or help"
    prepared = entry.extra["try_it"]
    assert set(prepared) == {"config", "why"} and sentence(prepared["why"])
    if owner == "method":
        assert entry.category and entry.formula and entry.cost
        assert sentence(entry.extra["known_for"]) and sentence(entry.extra["struggles_with"])
        assert entry.extra["known_for"] != entry.extra["struggles_with"]
    else:
        assert entry.category


@pytest.mark.parametrize("owner, entry", ENTRIES, ids=IDS)
def test_try_it_selects_the_entry_and_fits_a_short_run(owner: str, entry: Entry):
    config = RunConfig.parse(entry.extra["try_it"]["config"])
    assert getattr(config, owner) == entry.key
    assert config.steps <= 400
    assert len(config.tasks) >= 2  # a set-up where balancing or sharing matters
    assert RunConfig.from_query(config.to_query()) == config  # what the Try it link carries


@functools.cache
def _suite(name: str, params: tuple):
    from mtl_core.suites import build_suite  # torch: only for the training test
    return build_suite(name, dict(params))


@pytest.mark.parametrize("owner, entry", ENTRIES, ids=IDS)
def test_try_it_trains_three_steps(owner: str, entry: Entry):
    from mtl_core.engine.trainer import Trainer

    config = RunConfig.parse(entry.extra["try_it"]["config"]).model_copy(
        update={"steps": 3, "eval_every": 3, "device": "cpu"})
    trainer = Trainer(config, suite=_suite(config.suite, tuple(sorted(config.suite_params.items()))))
    records = list(trainer.run())
    assert trainer.status == "done", trainer.message
    assert len(records) == 3


def test_the_map_holds_every_method_and_architecture_exactly_once():
    nodes = taxonomy_nodes()
    methods = [node.key for node in nodes if node.kind == "method"]
    archs = [node.key for node in nodes if node.kind == "architecture"]
    assert sorted(methods) == sorted(METHODS.keys())
    assert sorted(archs) == sorted(ARCHITECTURES.keys())
    assert len({node.id for node in nodes}) == len(nodes)
    ids = {node.id for node in nodes}
    assert all(node.parent in ids for node in nodes if node.parent)  # one connected tree
    described = [node for node in nodes if node.kind == "described"]
    assert len(described) == len(DESCRIBED_ONLY)
    assert all("described only" in node.label for node in described)


def test_the_map_figure_draws_every_node_once():
    nodes = taxonomy_nodes()
    trace = taxonomy_figure(nodes).data[0]
    assert list(trace.ids) == [node.id for node in nodes]
    names = [data[3] for data in trace.customdata]  # the full name, hovered; the tile may abbreviate
    for entry in (*METHODS, *ARCHITECTURES):
        assert names.count(entry.name) == 1, entry.name
    shown = dict(zip(trace.ids, trace.labels, strict=True))
    assert shown["arch:mmoe"] == "MMoE" and shown["method:ew"] == "Equal<br>weighting"


def test_the_map_is_readable_on_a_projector_and_on_a_dark_page():
    nodes = taxonomy_nodes()
    trace = taxonomy_figure(nodes).data[0]
    assert trace.textfont.size >= 16
    leaves = [label for node, label in zip(nodes, trace.labels, strict=True)
              if node.kind in ("method", "architecture")]
    assert all(len(line) <= 24 for label in leaves for line in label.split("<br>")), leaves
    # every tile says its own text colour (the page theme's would be white on the light tiles),
    # and that colour contrasts with the tile by at least 4.5:1 (WCAG AA for text)
    for colour, text in zip(trace.marker.colors, trace.textfont.color, strict=True):
        assert contrast(colour, text) >= 4.5, (colour, text)
    # an architecture's tile is larger than a method's (its names are longer)
    area = dict(zip(trace.ids, trace.values, strict=True))
    assert area["arch:mmoe"] > area["method:pcgrad"] > 0
    # the survey's third part, with nothing built here, is not a sliver: >= 8% of the map
    assert area["described:Taskonomy at scale"] >= 0.08 * sum(area.values())


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two colours ("#rrggbb" or "white")."""
    def luminance(colour: str) -> float:
        hexa = "ffffff" if colour == "white" else colour.lstrip("#")
        channels = [int(hexa[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    high, low = sorted([luminance(first), luminance(second)], reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_readme_links_only_to_files_in_the_repository():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    targets = re.findall(r"\]\(([^)\s]+)\)", (root / "README.md").read_text())
    assert targets, "the README's screenshot link is gone?"
    for target in targets:
        assert "://" not in target and not target.startswith("/"), f"the README links outside: {target}"
        assert (root / target.split("#")[0]).exists(), f"the README links to a missing file: {target}"
