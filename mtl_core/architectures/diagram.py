"""Architecture diagrams as data: which blocks exist, whose they are, how data flows between them.

``structure(arch_key, tasks, input_kind=..., **knobs)`` is a pure function (no torch) that a page
can draw as a left-to-right graph::

    {"arch": "mmoe",
     "nodes": [{"id": "expert 1", "label": "Expert 1", "role": "expert", "task": None, "depth": 1}, ...],
     "edges": [{"source": "input", "target": "expert 1", "kind": "data", "task": None}, ...]}

A node's ``task`` is the task it belongs to by construction (a column, an own expert, a gate, a
head), ``None`` for blocks built for all tasks; ``depth`` is its column in the drawing (input 0,
outputs last). Roles: input, layer, expert, gate, mixing, attention, block, head, output. Edge
kinds: ``data`` (features flow), ``select`` (a gate reads this to choose), ``mix`` (a gate or
mixing unit weighs this), ``penalty`` (soft sharing's L2 pull, undirected), ``optional`` (AdaShare:
a task may skip the block). Data, select and mix edges always point forward (to a larger depth).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from mtl_core.architectures import ARCHITECTURES

# Stages of the suites' trunks (see mtl_core.architectures.parts): MLP on vectors, CNN on images.
TRUNK_LAYERS = {"vector": 2, "image": 3}


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []

    def node(self, node_id: str, label: str, role: str, depth: int, task: str | None = None) -> str:
        self.nodes.append({"id": node_id, "label": label, "role": role, "task": task, "depth": depth})
        return node_id

    def edge(self, source: str, target: str, kind: str = "data", task: str | None = None) -> None:
        self.edges.append({"source": source, "target": target, "kind": kind, "task": task})


def structure(arch_key: str, tasks: Sequence[str], *, input_kind: str = "vector",
              policy: Mapping[str, Sequence[bool]] | None = None, **knobs: Any) -> dict[str, Any]:
    """The blocks and connections of ``arch_key`` for ``tasks``; knobs as in the registry
    (defaults filled in, bad values raise ValueError). ``policy`` (AdaShare only: task -> executes
    each block?) draws a learned sharing tree instead of every possible path."""
    entry = ARCHITECTURES[arch_key]
    params = entry.validate_params(knobs)
    tasks = tuple(tasks)
    if not tasks:
        raise ValueError("a diagram needs at least one task")
    if input_kind not in TRUNK_LAYERS:
        raise ValueError(f"input_kind must be one of {', '.join(TRUNK_LAYERS)} (got {input_kind!r})")
    if policy is not None and arch_key != "adashare":
        raise ValueError("policy is for AdaShare diagrams only")
    layers = TRUNK_LAYERS[input_kind]
    graph = _Graph()
    graph.node("input", "Input", "input", 0)
    builder = _BUILDERS.get(arch_key)
    if builder is None:
        raise ValueError(f"no diagram for {entry.name} yet")
    last_depth = builder(graph, tasks, layers, params, policy)
    for task in tasks:
        graph.node(f"head {task}", f"Head {task}", "head", last_depth + 1, task)
        graph.node(f"output {task}", task, "output", last_depth + 2, task)
        graph.edge(f"head {task}", f"output {task}", task=task)
    return {"arch": arch_key, "nodes": graph.nodes, "edges": graph.edges}


# Each builder adds its blocks and the edges into the heads ("head <task>", added afterwards) and
# returns the depth of its last blocks.

def _hard_sharing(graph: _Graph, tasks: Sequence[str], layers: int, params: Mapping, policy: Any) -> int:
    previous = "input"
    for j in range(1, layers + 1):
        graph.edge(previous, graph.node(f"layer {j}", f"Shared layer {j}", "layer", j))
        previous = f"layer {j}"
    for task in tasks:
        graph.edge(previous, f"head {task}", task=task)
    return layers


def _columns(graph: _Graph, tasks: Sequence[str], layers: int, *, stitched: bool) -> int:
    """One column per task; cross-stitch puts a mixing unit after every layer."""
    depth = 0
    inputs = {t: "input" for t in tasks}
    for j in range(1, layers + 1):
        depth += 1
        for task in tasks:
            node = graph.node(f"{task} layer {j}", f"{task}: layer {j}", "layer", depth, task)
            graph.edge(inputs[task], node, task=task if inputs[task] != "input" else None)
            inputs[task] = node
        if stitched:
            depth += 1
            unit = graph.node(f"stitch {j}", f"Stitch {j} (alpha)", "mixing", depth)  # short: one column of its own
            for task in tasks:
                graph.edge(inputs[task], unit, "mix", task)
            inputs = {t: unit for t in tasks}
    for task in tasks:
        graph.edge(inputs[task], f"head {task}", task=task)
    return depth


def _single_task(graph: _Graph, tasks: Sequence[str], layers: int, params: Mapping, policy: Any) -> int:
    return _columns(graph, tasks, layers, stitched=False)


def _cross_stitch(graph: _Graph, tasks: Sequence[str], layers: int, params: Mapping, policy: Any) -> int:
    return _columns(graph, tasks, layers, stitched=True)


def _soft_l2(graph: _Graph, tasks: Sequence[str], layers: int, params: Mapping, policy: Any) -> int:
    depth = _columns(graph, tasks, layers, stitched=False)
    for j in range(1, layers + 1):
        for a, b in itertools.combinations(tasks, 2):
            graph.edge(f"{a} layer {j}", f"{b} layer {j}", "penalty")
    return depth


def _mmoe(graph: _Graph, tasks: Sequence[str], layers: int, params: Mapping, policy: Any) -> int:
    experts = [graph.node(f"expert {i + 1}", f"Expert {i + 1}", "expert", 1) for i in range(params["experts"])]
    for expert in experts:
        graph.edge("input", expert)
    for task in tasks:
        gate = graph.node(f"gate {task}", f"Gate {task}", "gate", 2, task)
        graph.edge("input", gate, "select", task)
        for expert in experts:
            graph.edge(expert, gate, "mix", task)
        graph.edge(gate, f"head {task}", task=task)
    return 2


def _ple(graph: _Graph, tasks: Sequence[str], layers: int, params: Mapping, policy: Any) -> int:
    levels = params.get("levels", 1)
    shared_in, task_in = "input", {t: "input" for t in tasks}
    depth = 0
    for level in range(1, levels + 1):
        top = level == levels
        prefix = f"level {level} " if levels > 1 else ""
        # Every level has its own experts and gates: with two levels, "Shared expert 1" named two nodes.
        suffix = f", level {level}" if levels > 1 else ""
        shared = []
        for i in range(params["shared_experts"]):
            shared.append(graph.node(f"{prefix}shared expert {i + 1}", f"Shared expert {i + 1}{suffix}", "expert",
                                     depth + 1))
            graph.edge(shared_in, shared[-1])
        own = {}
        for task in tasks:
            own[task] = []
            for i in range(params["task_experts"]):
                own[task].append(graph.node(f"{prefix}{task} expert {i + 1}", f"{task}: expert {i + 1}{suffix}", "expert",
                                            depth + 1, task))
                graph.edge(task_in[task], own[task][-1], task=task if task_in[task] != "input" else None)
        gates = {}
        for task in tasks:
            gates[task] = graph.node(f"{prefix}gate {task}", f"Gate {task}{suffix}", "gate", depth + 2, task)
            graph.edge(task_in[task], gates[task], "select", task)
            for expert in shared + own[task]:
                graph.edge(expert, gates[task], "mix", task)
        if not top:
            shared_gate = graph.node(f"{prefix}shared gate", f"Shared gate{suffix}", "gate", depth + 2)
            graph.edge(shared_in, shared_gate, "select")
            for expert in shared + [e for t in tasks for e in own[t]]:
                graph.edge(expert, shared_gate, "mix")
            shared_in = shared_gate
        task_in = gates
        depth += 2
    for task in tasks:
        graph.edge(task_in[task], f"head {task}", task=task)
    return depth


def _mtan(graph: _Graph, tasks: Sequence[str], layers: int, params: Mapping, policy: Any) -> int:
    previous = "input"
    attended = dict.fromkeys(tasks)
    for j in range(1, layers + 1):
        trunk = graph.node(f"layer {j}", f"Shared layer {j}", "layer", 2 * j - 1)
        graph.edge(previous, trunk)
        previous = trunk
        for task in tasks:
            node = graph.node(f"attention {task} {j}", f"{task}: attention {j}", "attention", 2 * j, task)
            graph.edge(trunk, node, task=task)
            if attended[task] is not None:
                graph.edge(attended[task], node, task=task)
            attended[task] = node
    for task in tasks:
        graph.edge(attended[task], f"head {task}", task=task)
    return 2 * layers


def _adashare(graph: _Graph, tasks: Sequence[str], layers: int, params: Mapping,
              policy: Mapping[str, Sequence[bool]] | None) -> int:
    blocks = params["blocks"]
    graph.node("stem", "Shared stem", "layer", 1)
    graph.edge("input", "stem")
    for b in range(1, blocks + 1):
        graph.node(f"block {b}", f"Block {b}", "block", b + 1)
    last = blocks + 1
    neck = None
    if layers > TRUNK_LAYERS["vector"]:  # images: pooled dense layer after the blocks
        last += 1
        neck = graph.node("neck", "Shared pool + dense", "layer", last)
    if policy is None:
        chain = ["stem", *[f"block {b}" for b in range(1, blocks + 1)]]
        for source, target in itertools.pairwise(chain):
            graph.edge(source, target, "optional")
        end = neck or chain[-1]
        if neck:
            graph.edge(chain[-1], neck, "optional")
        for task in tasks:
            graph.edge(end, f"head {task}", task=task)
        return last
    for task in tasks:
        choices = list(policy.get(task, ()))
        if len(choices) != blocks:
            raise ValueError(f"policy for {task!r} must list {blocks} execute/skip choices (got {len(choices)})")
        current = "stem"
        for b, execute in enumerate(choices, start=1):
            if execute:
                graph.edge(current, f"block {b}", task=task)
                current = f"block {b}"
        if neck:
            graph.edge(current, neck, task=task)
            current = neck
        graph.edge(current, f"head {task}", task=task)
    return last


_BUILDERS = {
    "hps": _hard_sharing,
    "stl": _single_task,
    "cross_stitch": _cross_stitch,
    "soft_l2": _soft_l2,
    "mmoe": _mmoe,
    "cgc": _ple,
    "ple": _ple,
    "mtan": _mtan,
    "adashare": _adashare,
}
