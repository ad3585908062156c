"""Figures of sharing: the diagram's geometry and the snapshot heatmaps' scales."""

from __future__ import annotations

import pandas as pd

from mtl_core.architectures import ARCHITECTURES
from mtl_core.architectures.diagram import structure
from mtl_core.figures import sharing as sharing_viz


def test_every_architectures_diagram_lays_out_left_to_right_with_every_edge_placed():
    for arch in ARCHITECTURES:
        nodes, edges = sharing_viz.diagram_layout(structure(arch.key, ["a", "b", "c"]))
        assert nodes.loc[nodes["role"] == "input", "x"].item() == 0, arch.key
        assert (nodes.loc[nodes["role"] == "output", "x"] == nodes["x"].max()).all(), arch.key
        assert not edges[["x", "y", "x2", "y2"]].isna().any().any(), arch.key
        # no two blocks on one spot
        assert not nodes.duplicated(["x", "y"]).any(), arch.key
        flow = edges[edges["kind"].isin(["data", "select", "mix"])]
        assert (flow["x2"] > flow["x"]).all(), arch.key


def test_the_diagram_colours_blocks_by_owner_and_shared_ones_grey():
    colors = {"a": "#0072B2", "b": "#E69F00"}
    spec = sharing_viz.diagram_chart(structure("mmoe", ["a", "b"]), colors).to_dict()
    scale = spec["layer"][1]["encoding"]["color"]["scale"]
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
    for key, knobs in (("ple", {"levels": 2}), ("cgc", {}), ("mmoe", {}), ("cross_stitch", {})):
        labels = [node["label"] for node in structure(key, ["a", "b"], **knobs)["nodes"]]
        assert len(labels) == len(set(labels)), (key, labels)


def test_a_cell_without_a_value_is_left_blank():
    frame = pd.DataFrame([[0.5, None], [0.2, 0.8]], index=["a", "b"], columns=["shared 1", "a 1"])
    spec = sharing_viz.snapshot_heatmap(frame, "CGC gate").to_dict()
    (text,) = [layer for layer in spec["layer"] if layer["mark"]["type"] == "text"]
    assert {"filter": "isValid(datum.value)"} in text["transform"]
