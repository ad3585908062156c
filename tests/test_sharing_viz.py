"""Figures of sharing: the diagram's geometry and the snapshot heatmaps' scales."""

from __future__ import annotations

import pandas as pd

from mtl_core.architectures import ARCHITECTURES
from mtl_core.architectures.diagram import structure
from mtl_core.figures import sharing as sharing_viz

# Representative knob values: many experts, stacked levels, several tasks, every trunk.
DIAGRAMS = [(arch.key, {}, tasks, kind) for arch in ARCHITECTURES
            for tasks in (["a", "b"], ["digit", "parity", "ink"]) for kind in ("vector", "image")] + [
    ("mmoe", {"experts": 4}, ["a", "b", "c"], "vector"),
    ("mmoe", {"experts": 8}, ["a", "b", "c", "d"], "image"),
    ("ple", {"levels": 2, "shared_experts": 2, "task_experts": 2}, ["a", "b", "c"], "vector"),
    ("ple", {"levels": 4, "shared_experts": 3, "task_experts": 2}, ["a", "b"], "image"),
    ("cgc", {"shared_experts": 3, "task_experts": 3}, ["a", "b", "c"], "vector"),
    ("adashare", {"blocks": 8}, ["a", "b", "c"], "image"),
    ("soft_l2", {}, ["a", "b", "c", "d"], "image"),
    ("cross_stitch", {}, ["a", "b", "c", "d"], "image"),
    ("mtan", {}, ["a", "b", "c", "d"], "image"),
]
POLICY = {"a": [True, False, True, True], "b": [False, True, True, False], "c": [False, False, False, True]}


def laid_out():
    for key, knobs, tasks, kind in DIAGRAMS:
        yield (key, knobs, len(tasks), kind), sharing_viz.diagram_layout(structure(key, tasks, input_kind=kind, **knobs))
    yield ("adashare policy",), sharing_viz.diagram_layout(structure("adashare", ["a", "b", "c"], policy=POLICY))


def crosses(segment, box, inset=0.5) -> bool:
    """Whether the segment passes through the box's interior (Liang-Barsky clipping; touching a
    side, or running along one, does not count)."""
    (x0, y0), (x1, y1) = segment
    left, right, top, bottom = box[0] + inset, box[1] - inset, box[2] + inset, box[3] - inset
    dx, dy = x1 - x0, y1 - y0
    low, high = 0.0, 1.0
    for p, q in ((-dx, x0 - left), (dx, right - x0), (-dy, y0 - top), (dy, bottom - y0)):
        if p == 0:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            low = max(low, t)
        else:
            high = min(high, t)
        if low > high:
            return False
    return True


def test_the_segment_check_sees_crossings_and_ignores_touching():
    box = (0, 10, 0, 10)
    assert crosses(((-5, 5), (15, 5)), box) and crosses(((2, 2), (3, 3)), box)
    assert not crosses(((-5, 0), (15, 0)), box)  # along the top side
    assert not crosses(((-5, -1), (15, -1)), box) and not crosses(((10, 5), (20, 5)), box)
    assert crosses(((-5, -4), (15, 14)), box) and not crosses(((-5, 8), (3, 16)), box)


def test_every_architectures_diagram_lays_out_left_to_right_with_every_edge_placed():
    for case, (nodes, paths) in laid_out():
        assert nodes.loc[nodes["role"] == "input", "x"].item() == nodes["x"].min(), case
        assert (nodes.loc[nodes["role"] == "output", "x"] == nodes["x"].max()).all(), case
        assert not paths[["x", "y"]].isna().any().any(), case
        for _, path in paths.groupby("edge"):
            first, last = path.iloc[0], path.iloc[-1]
            if first["kind"] in ("data", "select", "mix"):  # flow points forward, and never back
                assert last["x"] > first["x"] and path["x"].is_monotonic_increasing, case


def test_no_edge_crosses_a_label_but_its_own_ends():
    # Labels above round markers, edges drawn straight: MMoE's gate inputs ran through the experts'
    # names and soft sharing's penalties through the middle task's column.
    for case, (nodes, paths) in laid_out():
        boxes = list(zip(nodes["id"], zip(nodes["x0"], nodes["x1"], nodes["y0"], nodes["y1"], strict=True),
                         strict=True))
        for _, path in paths.groupby("edge"):
            ends = {path["source"].iloc[0], path["target"].iloc[0]}
            points = list(zip(path["x"], path["y"], strict=True))
            for segment in zip(points, points[1:], strict=False):
                hit = [n for n, box in boxes if n not in ends and crosses(segment, box)]
                assert not hit, (case, sorted(ends), segment, hit)


def test_labels_fit_their_boxes_overlap_none_and_stay_inside_the_figure():
    for case, (nodes, paths) in laid_out():
        width, height = nodes.attrs["size"]
        assert (nodes[["x0", "y0"]] >= 0).all().all() and (nodes["x1"] <= width).all(), case
        assert (nodes["y1"] <= height).all() and paths["x"].between(0, width).all(), case
        assert paths["y"].between(0, height).all(), case
        sizes = nodes.attrs["sizes"]
        for node in nodes.itertuples():
            text_width = max(sizes.text_width(line) for line in node.lines)
            assert text_width <= node.x1 - node.x0, (case, node.label)
            assert len(node.lines) * sizes.line <= node.y1 - node.y0, (case, node.label)
        boxes = list(nodes[["id", "x0", "x1", "y0", "y1"]].itertuples(index=False))
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                apart = a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0
                assert apart, (case, a.id, b.id)


def test_default_diagrams_fit_the_page_at_1280_wide_deep_ones_in_a_smaller_font():
    # MTAN on images ran 1170 px wide, past the page's right edge, its outputs cut off
    for arch in ARCHITECTURES:
        for kind in ("vector", "image"):
            nodes, _ = sharing_viz.diagram_layout(structure(arch.key, ["digit", "parity", "ink", "centre"],
                                                            input_kind=kind))
            assert nodes.attrs["size"][0] <= sharing_viz.DIAGRAM_MAX_WIDTH, (arch.key, kind)
            assert nodes.attrs["sizes"].font >= 10, (arch.key, kind)  # still legible on a projector
    small, _ = sharing_viz.diagram_layout(structure("hps", ["a", "b"]))
    assert small.attrs["sizes"].font == sharing_viz.LABEL_FONT_PX


def test_the_chart_draws_the_laid_out_geometry_at_its_own_size():
    drawing = structure("ple", ["a", "b"], levels=2)
    nodes, _ = sharing_viz.diagram_layout(drawing)
    spec = sharing_viz.diagram_chart(drawing, {"a": "#0072B2", "b": "#E69F00"}).to_dict()
    assert (spec["width"], spec["height"]) == nodes.attrs["size"]
    lines, boxes, labels = spec["layer"]
    assert [lines["mark"]["type"], boxes["mark"]["type"], labels["mark"]["type"]] == ["line", "rect", "text"]
    assert (boxes["encoding"]["x"]["field"], boxes["encoding"]["x2"]["field"]) == ("x0", "x1")
    width = nodes.attrs["size"][0]
    assert boxes["encoding"]["x"]["scale"]["domain"] == [0, width] == boxes["encoding"]["x"]["scale"]["range"]
    assert labels["mark"]["lineBreak"] == "\n" and labels["encoding"]["text"]["field"] == "text"


def test_the_diagram_colours_blocks_by_owner_and_shared_ones_grey():
    colors = {"a": "#0072B2", "b": "#E69F00"}
    spec = sharing_viz.diagram_chart(structure("mmoe", ["a", "b"]), colors).to_dict()
    scale = spec["layer"][1]["encoding"]["stroke"]["scale"]
    assert scale == {"domain": ["shared", "a", "b"], "range": [sharing_viz.SHARED_GREY, "#0072B2", "#E69F00"]}


def test_gates_use_a_fixed_unit_scale_and_other_matrices_their_own_range():
    gate = pd.DataFrame([[0.2, 0.8], [0.5, 0.5]], index=["a", "b"], columns=["expert 1", "expert 2"])
    spec = sharing_viz.snapshot_heatmap(gate, "MMoE gate").to_dict()
    heat, text = spec["layer"]
    assert heat["encoding"]["color"]["scale"]["domain"] == [0.0, 1.0]
    assert heat["encoding"]["x"]["scale"]["domain"] == ["expert 1", "expert 2"]
    assert heat["encoding"]["y"]["scale"]["domain"] == ["a", "b"]
    alpha = pd.DataFrame([[1.05, 0.2], [0.1, 1.3]], index=["a", "b"], columns=["a", "b"])
    heat = sharing_viz.snapshot_heatmap(alpha, "cross-stitch alpha, layer 1").to_dict()["layer"][0]
    assert heat["encoding"]["color"]["scale"]["domain"] == [0.0, 1.3]
    image = pd.DataFrame([[float(i + j) for j in range(16)] for i in range(16)])
    big = sharing_viz.snapshot_heatmap(image, "MTAN attention map, a, layer 1").to_dict()
    assert big["mark"]["type"] == "rect"  # too many cells to write values in


def test_snapshot_at_takes_each_matrix_as_of_the_step_and_skips_cosines():
    frame = lambda v: pd.DataFrame([[v]])  # noqa: E731
    matrices = pd.DataFrame({"step": [1, 1, 10, 10, 20], "name": ["cosine", "gate", "gate", "load", "gate"],
                             "value": [[[1.0]], frame(1), frame(10), frame(10), frame(20)]})
    assert sharing_viz.snapshot_names(matrices) == ["gate", "load"]
    at = sharing_viz.snapshot_at(matrices, 15)
    assert list(at) == ["gate", "load"] and at["gate"].iat[0, 0] == 10
    assert sharing_viz.snapshot_at(matrices, 0) == {}


def test_every_block_of_a_diagram_has_its_own_label():
    # PLE with two levels drew two nodes named "Shared expert 1"
    for key, knobs, tasks, kind in DIAGRAMS:
        labels = [node["label"] for node in structure(key, tasks, input_kind=kind, **knobs)["nodes"]]
        assert len(labels) == len(set(labels)), (key, labels)


def test_a_cell_without_a_value_is_left_blank():
    frame = pd.DataFrame([[0.5, None], [0.2, 0.8]], index=["a", "b"], columns=["shared 1", "a 1"])
    spec = sharing_viz.snapshot_heatmap(frame, "CGC gate").to_dict()
    (text,) = [layer for layer in spec["layer"] if layer["mark"]["type"] == "text"]
    assert {"filter": "isValid(datum.value)"} in text["transform"]


def test_a_gates_heatmap_labels_every_expert_and_says_what_a_cell_means():
    experts = [f"expert {i + 1}" for i in range(8)]
    gate = pd.DataFrame([[1 / 8] * 8] * 3, index=["a", "b", "c"], columns=experts)
    heat = sharing_viz.snapshot_heatmap(gate, "MMoE gate").to_dict()["layer"][0]
    x, y = heat["encoding"]["x"]["axis"], heat["encoding"]["y"]["axis"]
    # vega hid every other expert's label where they overlapped
    assert x["values"] == experts and x["labelOverlap"] is False and x["title"] == "Expert"
    assert y["values"] == ["a", "b", "c"] and y["labelOverlap"] is False and y["title"] == "Task"
    assert "each row sums to 1" in sharing_viz.snapshot_meaning("MMoE gate")[2]
    assert "cannot choose" in sharing_viz.snapshot_meaning("PLE gate, level 2")[2]
    many = pd.DataFrame([[1 / 32] * 32] * 2, index=["a", "b"], columns=[f"expert {i + 1}" for i in range(32)])
    axis = sharing_viz.snapshot_heatmap(many, "MMoE gate").to_dict()["encoding"]["x"]["axis"]
    # too many to write values in, still all named; "expert 12" reads "12" under the title "Expert"
    assert len(axis["values"]) == 32 and "replace(datum.label, 'expert '" in axis["labelExpr"]
    ple = pd.DataFrame([[0.5, 0.5, None]], index=["a"], columns=["shared 1", "a 1", "b 1"])
    axis = sharing_viz.snapshot_heatmap(ple, "PLE gate, level 1").to_dict()["layer"][0]["encoding"]["x"]["axis"]
    assert axis["values"] == ["shared 1", "a 1", "b 1"] and "labelExpr" not in axis


def test_every_snapshot_an_architecture_records_has_a_meaning():
    names = ["MMoE gate", "MMoE expert load", "CGC gate", "PLE expert load, level 1", "cross-stitch alpha, layer 2",
             "AdaShare execute probability", "AdaShare sharing tree", "MTAN mean attention",
             "MTAN attention map, a, layer 1", "MTAN input", "soft sharing distance"]
    for name in names:
        rows, columns, caption = sharing_viz.snapshot_meaning(name)
        assert caption.endswith("."), name
    alpha = pd.DataFrame([[0.9, 0.1], [0.1, 0.9]], index=["a", "b"], columns=["a", "b"])
    x = sharing_viz.snapshot_heatmap(alpha, "cross-stitch alpha, layer 1").to_dict()["layer"][0]["encoding"]["x"]
    assert x["axis"]["title"] == "Column read" and x["axis"]["labelAngle"] == 0
    image = pd.DataFrame([[0.5] * 16] * 16)
    assert sharing_viz.snapshot_heatmap(image, "MTAN input").to_dict()["encoding"]["x"]["axis"] is None
