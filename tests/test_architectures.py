"""Sharing architectures: output shapes, the shared / task parameter split (checked by where each
task's gradient goes), training with a loss weighting and with a Jacobian method, well-formed
sharing snapshots, the papers' properties, and the diagrams."""

from __future__ import annotations

import functools
import itertools
import math
import subprocess
import sys

import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mtl_core.architectures import ARCHITECTURES
from mtl_core.architectures.adashare import AdaShare, sharing_tree
from mtl_core.architectures.cross_stitch import stitch_init
from mtl_core.architectures.diagram import TRUNK_LAYERS, structure
from mtl_core.architectures.moe import IMAGE_EXPERT_CHANNELS, ExpertBank
from mtl_core.config import RunConfig
from mtl_core.engine.jacobian import task_jacobian
from mtl_core.engine.records import StepRecord
from mtl_core.engine.trainer import Trainer
from mtl_core.methods import METHODS
from mtl_core.runs.store import Store
from mtl_core.suites import SUITES, build_suite
from tests.suite_support import OFFLINE

# Every registered suite, made small (its registry entry says how): each test builds models on them
# in milliseconds.
SUITE_PARAMS = {key: dict(SUITES[key].extra["small"]) for key in OFFLINE}
# Every architecture beyond the two classics (hard sharing and the single-task yardstick).
NEW = [entry.key for entry in ARCHITECTURES if entry.category not in {"hard sharing", "baseline"}]
# Every registered architecture, plus PLE with three levels (where the split of task gates differs).
VARIANTS = [(entry.key, {}) for entry in ARCHITECTURES] + [("ple", {"levels": 3})]


def variant_id(variant: tuple[str, dict]) -> str:
    key, params = variant
    return key + "".join(f"-{k}{v}" for k, v in params.items())


@functools.cache
def suite_data(key: str):
    return build_suite(key, SUITE_PARAMS[key])


def make_model(key: str, suite_key: str, tasks=None, seed: int = 0, **params):
    suite = suite_data(suite_key)
    tasks = tuple(tasks or suite.info.default_tasks)
    torch.manual_seed(seed)
    entry = ARCHITECTURES[key]
    return entry.load()(suite, tasks, **entry.validate_params(params)), suite, tasks


def batch(suite, tasks, size=16):
    return suite.x_train[:size], {t: suite.y_train[t][:size] for t in tasks}


def jacobian_method() -> str | None:
    """A registered gradient method that loads (others are being added alongside)."""
    for key in ("pcgrad", "mgda", "upgrad"):
        if key in METHODS:
            try:
                METHODS[key].load()
            except ImportError:
                continue
            return key
    return None


# --- shapes, the parameter split and where gradients go ----------------------------------------------

@pytest.mark.parametrize("suite_key", SUITE_PARAMS)
@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_outputs_and_the_shared_task_split_follow_the_gradients(variant, suite_key):
    key, params = variant
    model, suite, tasks = make_model(key, suite_key, **params)
    x, y = batch(suite, tasks)
    outputs = model(x)
    assert list(outputs) == list(tasks)
    for task in tasks:
        assert outputs[task].shape == (16, suite.task(task).n_outputs)
        assert torch.isfinite(outputs[task]).all()

    shared = list(model.shared_parameters())
    owner: dict[int, str] = {}
    for task in tasks:
        for param in model.task_parameters(task):
            assert id(param) not in owner and all(param is not s for s in shared)
            owner[id(param)] = task
    everything = list(model.parameters())
    assert {id(p) for p in everything} == {id(p) for p in shared} | set(owner)
    assert len(shared) + len(owner) == len(everything)

    losses = [suite.loss(t, outputs[t], y[t]) for t in tasks]
    reached_by = {id(p): 0 for p in shared}
    for task, loss in zip(tasks, losses, strict=True):
        grads = torch.autograd.grad(loss, everything, retain_graph=True, allow_unused=True)
        own_reached = False
        for param, grad in zip(everything, grads, strict=True):
            nonzero = grad is not None and bool(grad.abs().sum() > 0)
            if owner.get(id(param), task) != task:
                assert not nonzero, f"{task}'s loss reaches a parameter of {owner[id(param)]}"
            elif id(param) in owner:
                own_reached |= nonzero
            elif nonzero:
                reached_by[id(param)] += 1
        assert own_reached, f"{task}'s loss reaches none of its own parameters"
    # Nothing listed as shared belongs to one task in fact: every task reaches every shared tensor.
    assert all(count == len(tasks) for count in reached_by.values())

    if shared:  # the Jacobian the gradient methods read: one non-zero row per task
        jacobian = task_jacobian(torch.stack(losses), shared)
        assert jacobian.shape == (len(tasks), sum(p.numel() for p in shared))
        assert (jacobian.norm(dim=1) > 0).all()
    penalty = model.regularizer()
    assert torch.isfinite(torch.as_tensor(penalty)).all() and torch.as_tensor(penalty).dim() == 0


def run_config(key: str, suite_key: str, method: str, **changes) -> RunConfig:
    return RunConfig.parse({"suite": suite_key, "suite_params": SUITE_PARAMS[suite_key], "arch": key,
                            "method": method, "steps": 3, "batch_size": 32, "eval_every": 3, "probe_every": 2,
                            "snapshot_every": 2, "device": "cpu", **changes})


@pytest.mark.parametrize("suite_key", SUITE_PARAMS)
@pytest.mark.parametrize("key", NEW)
def test_trains_with_a_loss_weighting_and_with_a_jacobian_method(key, suite_key):
    trainer = Trainer(run_config(key, suite_key, "ew"))
    records = list(trainer.run())
    assert trainer.status == "done" and len(records) == 3
    assert all(math.isfinite(v) for r in records for v in r.loss.values())
    assert records[-1].val is not None and all(math.isfinite(m["loss"]) for m in records[-1].val.values())
    assert [r.step for r in records if r.snapshot] == [1, 2]

    method = jacobian_method()
    if method is None:
        pytest.skip("no gradient-aggregation method is registered yet (the split is checked above)")
    config = run_config(key, suite_key, method)
    if not list(ARCHITECTURES[key].load()(suite_data(suite_key), config.tasks).shared_parameters()):
        with pytest.raises(ValueError, match="shares none"):
            Trainer(config)
        return
    trainer = Trainer(config)
    records = list(trainer.run())
    assert trainer.status == "done"
    assert all(math.isfinite(v) for r in records for v in r.loss.values())
    assert records[0].cosine is not None and records[0].update_norm > 0


# --- snapshots ---------------------------------------------------------------------------------------

def check_frame(name: str, frame: pd.DataFrame) -> None:
    assert isinstance(frame, pd.DataFrame) and frame.size > 0, name
    assert all(isinstance(i, str) for i in frame.index) and all(isinstance(c, str) for c in frame.columns), name
    assert frame.dtypes.map(pd.api.types.is_float_dtype).all(), name


@pytest.mark.parametrize("suite_key", SUITE_PARAMS)
@pytest.mark.parametrize("key", NEW)
def test_snapshots_are_labelled_float_matrices_that_the_store_round_trips(key, suite_key, tmp_path):
    model, suite, tasks = make_model(key, suite_key)
    model.train()
    x, _ = batch(suite, tasks)
    before = {t: v.detach() for t, v in model(x).items()} if key != "adashare" else None
    snapshot = model.sharing_snapshot()
    assert snapshot and model.training  # taken in eval mode, handed back in training mode
    for name, frame in snapshot.items():
        check_frame(name, frame)
        if key != "cgc" and key != "ple":  # CGC / PLE mark the experts a gate cannot choose with NaN
            assert frame.notna().all().all(), name
    if before is not None:  # a snapshot changes nothing about the model
        after = model(x)
        assert all(torch.equal(before[t], after[t].detach()) for t in tasks)

    store = Store(tmp_path / "mtl.db")
    run = store.create_run(run_config(key, suite_key, "ew"))
    store.append(run, [StepRecord(step=1, time_s=0.0, loss=dict.fromkeys(tasks, 1.0),
                                  weight=dict.fromkeys(tasks, 1.0), snapshot=snapshot)])
    stored = store.matrices(run)
    assert list(stored["name"]) == list(snapshot)
    for name, value in zip(stored["name"], stored["value"], strict=True):
        pd.testing.assert_frame_equal(value, snapshot[name], check_dtype=False)


@pytest.mark.parametrize("n_tasks, suite_key", [(2, "multidigits"), (4, "digit_attributes"), (1, "synthetic")])
def test_cross_stitch_starts_at_the_papers_initialisation(n_tasks, suite_key):
    tasks = suite_data(suite_key).info.task_names[:n_tasks]
    model, _, _ = make_model("cross_stitch", suite_key, tasks)
    snapshot = model.sharing_snapshot()
    assert list(snapshot) == [f"cross-stitch alpha, layer {j}" for j in range(1, TRUNK_LAYERS[
        suite_data(suite_key).info.input_kind] + 1)]
    for frame in snapshot.values():
        alpha = torch.tensor(frame.to_numpy())
        assert list(frame.index) == list(tasks) == list(frame.columns)
        assert torch.allclose(alpha.sum(dim=1), torch.ones(n_tasks, dtype=alpha.dtype))
        if n_tasks > 1:
            assert torch.allclose(alpha.diagonal(), torch.full((n_tasks,), 0.9, dtype=alpha.dtype))
            off = alpha[~torch.eye(n_tasks, dtype=torch.bool)]
            assert torch.allclose(off, torch.full_like(off, 0.1 / (n_tasks - 1)))
    assert torch.equal(stitch_init(3, 0.7), torch.tensor([[0.7, 0.15, 0.15], [0.15, 0.7, 0.15], [0.15, 0.15, 0.7]]))


def test_cross_stitch_with_self_weight_one_is_independent_columns():
    model, suite, tasks = make_model("cross_stitch", "multidigits", self_weight=1.0)
    x, y = batch(suite, tasks)
    out = model(x)
    loss = suite.loss(tasks[0], out[tasks[0]], y[tasks[0]])
    other = list(model.columns[tasks[1]].parameters())
    grads = torch.autograd.grad(loss, other, allow_unused=True, retain_graph=True)
    assert all(g is None or not g.any() for g in grads)
    mine = torch.autograd.grad(loss, list(model.columns[tasks[0]].parameters()), allow_unused=True)
    assert any(g is not None and g.any() for g in mine)


@pytest.mark.parametrize("key", ["mmoe", "cgc", "ple"])
@pytest.mark.parametrize("suite_key", ["synthetic", "digit_attributes"])
def test_gates_are_distributions_over_the_experts_they_may_choose(key, suite_key):
    model, suite, tasks = make_model(key, suite_key, **({"levels": 3} if key == "ple" else {}))
    snapshot = model.sharing_snapshot()
    gates = {n: f for n, f in snapshot.items() if " gate" in n}
    loads = {n: f for n, f in snapshot.items() if "load" in n}
    assert gates and len(gates) == len(loads) == (3 if key == "ple" else 1)
    for name, frame in gates.items():
        values = frame.to_numpy()
        finite = values[~pd.isna(values)]
        assert ((finite >= 0) & (finite <= 1)).all()
        assert abs(pd.DataFrame(values).sum(axis=1, skipna=True) - 1).max() < 1e-6, name
        for task in tasks:
            chosen = [c for c in frame.columns if not pd.isna(frame.loc[task, c])]
            if key == "mmoe":
                assert chosen == list(frame.columns)
            else:  # the shared experts and the task's own, never another task's
                assert all(c.startswith(("shared ", f"{task} ")) for c in chosen)
                assert any(c.startswith("shared ") for c in chosen) and any(c.startswith(f"{task} ") for c in chosen)
        top = name.endswith(f"level {len(gates)}") or len(gates) == 1
        assert ("shared" in frame.index) == (not top)  # the shared gate exists below the top level
    for frame in loads.values():
        assert abs(frame.to_numpy().sum() - 1) < 1e-6


def test_mtan_masks_are_soft_and_spatial_on_images():
    model, suite, tasks = make_model("mtan", "multidigits")
    snapshot = model.sharing_snapshot()
    mean = snapshot["MTAN mean attention"]
    assert list(mean.index) == list(tasks) and list(mean.columns) == ["layer 1", "layer 2", "layer 3"]
    assert ((mean.to_numpy() > 0) & (mean.to_numpy() < 1)).all()
    height, width = suite.input_shape[1:]
    assert snapshot["MTAN input"].shape == (height, width)
    for task in tasks:  # the two convolutional stages keep the image's size; the third is dense
        for layer in (1, 2):
            frame = snapshot[f"MTAN attention map, {task}, layer {layer}"]
            assert frame.shape == (height, width) and ((frame.to_numpy() > 0) & (frame.to_numpy() < 1)).all()
        assert f"MTAN attention map, {task}, layer 3" not in snapshot
    vector_model, _, _ = make_model("mtan", "synthetic")
    assert list(vector_model.sharing_snapshot()) == ["MTAN mean attention"]


def test_adashare_policy_probabilities_tree_temperature_and_penalties():
    model, suite, tasks = make_model("adashare", "digit_attributes")
    assert isinstance(model, AdaShare)
    snapshot = model.sharing_snapshot()
    p = snapshot["AdaShare execute probability"]
    assert list(p.index) == list(tasks) and list(p.columns) == [f"block {b}" for b in range(1, 5)]
    assert ((p.to_numpy() >= 0) & (p.to_numpy() <= 1)).all() and (p.to_numpy() == 0.5).all()
    assert (snapshot["AdaShare sharing tree"].to_numpy() == 0).all()  # all execute everything: one trunk
    # Penalties at the start: equal policies (no sharing penalty), sparsity -log(1/2) per task.
    assert math.isclose(model.regularizer().item(), 0.05 * len(tasks) * math.log(2), rel_tol=1e-6)
    assert model.current_temperature() == 5.0
    model.steps = 250
    assert math.isclose(model.current_temperature(), 5.0 * 0.965**2)
    # Training draws decisions; evaluation uses the expected ones.
    x, _ = batch(suite, tasks)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[tasks[0]], model(x)[tasks[0]])
    model.train()
    assert not torch.equal(model(x)[tasks[0]], model(x)[tasks[0]])
    assert model.steps == 252


def test_adashare_sparsity_penalty_makes_tasks_skip_blocks():
    config = RunConfig.parse({"suite": "synthetic", "suite_params": SUITE_PARAMS["synthetic"], "arch": "adashare",
                              "arch_params": {"sparsity": 1.0, "sharing": 0.0}, "steps": 30, "batch_size": 32,
                              "eval_every": 30, "probe_every": 0, "snapshot_every": 30, "device": "cpu"})
    records = list(Trainer(config).run())
    p = records[-1].snapshot["AdaShare execute probability"].to_numpy()
    assert p.mean() < 0.3


def test_sharing_tree_groups_tasks_by_their_decisions_so_far():
    execute = [[True, True, False], [True, False, False], [True, True, True]]
    assert sharing_tree(execute) == [[0, 0, 0], [0, 1, 1], [0, 0, 2]]
    assert sharing_tree([[False, True], [False, True]]) == [[0, 0], [0, 0]]


def test_soft_sharing_columns_start_equal_and_the_penalty_keeps_them_closer():
    def distance(strength: float) -> float:
        config = RunConfig.parse({"suite": "synthetic", "suite_params": SUITE_PARAMS["synthetic"],
                                  "arch": "soft_l2", "arch_params": {"strength": strength}, "steps": 20,
                                  "batch_size": 32, "eval_every": 20, "probe_every": 0, "snapshot_every": 20,
                                  "device": "cpu"})
        records = list(Trainer(config).run())
        last = records[-1].snapshot["soft sharing distance"]
        assert list(last.index) == ["layer 1", "layer 2"] and list(last.columns) == ["y1 | y2"]
        return float(last.to_numpy().mean())

    free, pulled = distance(0.0), distance(10.0)
    assert free > 0 and pulled < free / 2
    model, _, _ = make_model("soft_l2", "synthetic")
    assert (model.sharing_snapshot()["soft sharing distance"].to_numpy() == 0).all()
    assert model.regularizer().item() == 0.0


# --- registry and knobs ------------------------------------------------------------------------------

@pytest.mark.parametrize("key", NEW)
def test_new_entries_cite_their_paper_and_reject_bad_knobs(key):
    entry = ARCHITECTURES[key]
    assert entry.paper is not None and entry.paper.year >= 2015 and entry.category
    params = entry.validate_params({})
    assert params == {knob.name: knob.default for knob in entry.knobs}
    for knob in entry.knobs:
        with pytest.raises(ValueError, match=knob.name):
            entry.validate_params({knob.name: knob.high + 1})
        with pytest.raises(Exception, match=knob.name):
            RunConfig.parse({"arch": key, "arch_params": {knob.name: knob.high + 1}})


# --- diagrams ----------------------------------------------------------------------------------------

FLOW = {"data", "select", "mix", "optional"}


@pytest.mark.parametrize("input_kind", TRUNK_LAYERS)
@pytest.mark.parametrize("key", ARCHITECTURES.keys())
def test_diagrams_are_forward_graphs_from_the_input_to_every_task(key, input_kind):
    tasks = ("a", "b", "c")
    graph = structure(key, tasks, input_kind=input_kind)
    nodes = {node["id"]: node for node in graph["nodes"]}
    assert len(nodes) == len(graph["nodes"]) and graph["arch"] == key
    assert all(node["task"] in (None, *tasks) for node in nodes.values())
    successors: dict[str, list[str]] = {}
    for edge in graph["edges"]:
        assert edge["source"] in nodes and edge["target"] in nodes
        if edge["kind"] in FLOW:
            assert nodes[edge["source"]]["depth"] < nodes[edge["target"]]["depth"], edge
            successors.setdefault(edge["source"], []).append(edge["target"])
        else:
            assert edge["kind"] == "penalty" and key == "soft_l2"
    reached, frontier = {"input"}, ["input"]
    while frontier:
        for target in successors.get(frontier.pop(), []):
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(nodes)  # every block lies on a path from the input
    for task in tasks:
        assert nodes[f"head {task}"]["task"] == task and nodes[f"output {task}"]["role"] == "output"


def test_diagrams_show_each_architectures_blocks():
    def roles(graph, role):
        return [n for n in graph["nodes"] if n["role"] == role]

    assert len(roles(structure("mmoe", ("a", "b"), experts=5), "expert")) == 5
    assert len(roles(structure("cross_stitch", ("a", "b"), input_kind="image"), "mixing")) == 3
    ple = structure("ple", ("a", "b"), levels=3, shared_experts=2, task_experts=1)
    gates = roles(ple, "gate")
    assert len(gates) == 3 * 2 + 2 and sum(g["task"] is None for g in gates) == 2  # no shared gate on top
    assert len(roles(ple, "expert")) == 3 * (2 + 2)
    assert len([e for e in structure("soft_l2", ("a", "b", "c"))["edges"] if e["kind"] == "penalty"]) == 2 * 3
    assert len(roles(structure("mtan", ("a", "b"), input_kind="image"), "attention")) == 2 * 3
    tree = structure("adashare", ("a", "b"), blocks=3, policy={"a": [True, False, True], "b": [True, True, False]})
    paths = {t: [(e["source"], e["target"]) for e in tree["edges"] if e["task"] == t] for t in ("a", "b")}
    assert paths["a"] == [("stem", "block 1"), ("block 1", "block 3"), ("block 3", "head a"), ("head a", "output a")]
    assert paths["b"] == [("stem", "block 1"), ("block 1", "block 2"), ("block 2", "head b"), ("head b", "output b")]


def test_diagram_inputs_are_validated_and_no_torch_is_needed():
    with pytest.raises(ValueError, match="experts"):
        structure("mmoe", ("a",), experts=0)
    with pytest.raises(ValueError, match="unknown architecture"):
        structure("nope", ("a",))
    with pytest.raises(ValueError, match="input_kind"):
        structure("hps", ("a",), input_kind="audio")
    with pytest.raises(ValueError, match="3 execute/skip"):
        structure("adashare", ("a",), blocks=3, policy={"a": [True]})
    code = ("import sys; from mtl_core.architectures.diagram import structure; "
            "[structure(k, ('a', 'b')) for k in ('hps', 'mmoe', 'ple', 'adashare')]; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_registered_architecture_has_a_diagram():
    for key, input_kind in itertools.product(ARCHITECTURES.keys(), TRUNK_LAYERS):
        assert structure(key, ("a",), input_kind=input_kind)["nodes"]


def test_a_bank_of_experts_computes_each_expert_independently():
    torch.manual_seed(3)
    c1, c2 = IMAGE_EXPERT_CHANNELS
    bank = ExpertBank(3, (1, 8, 11), units=5)
    x = torch.rand(4, 1, 8, 11)
    conv1, conv2 = bank.features[0], bank.features[2]
    for i in range(3):
        own1, own2 = slice(i * c1, (i + 1) * c1), slice(i * c2, (i + 1) * c2)
        h = F.relu(F.conv2d(x, conv1.weight[own1], conv1.bias[own1], padding=1))
        h = F.max_pool2d(F.relu(F.conv2d(h, conv2.weight[own2], conv2.bias[own2], padding=1)), 2)
        expected = F.relu(h.flatten(1) @ bank.project.weight[i] + bank.project.bias[i])
        assert torch.allclose(bank(x)[:, i], expected, atol=1e-6)
    dense = ExpertBank(2, (7,), units=3)
    z = torch.randn(5, 7)
    for i in range(2):
        assert torch.allclose(dense(z)[:, i], F.relu(z @ dense.project.weight[i] + dense.project.bias[i]))


def test_the_fast_max_pool_gives_max_pools_numbers_and_gradients():
    from mtl_core.suites.backbones import MaxPool2x2

    torch.manual_seed(0)
    # ReLU outputs: many ties at zero, as in the trunks; odd sizes fall back to the kernel.
    for shape in ((16, 32, 8, 8), (4, 3, 6, 10), (2, 5, 7, 8)):
        x = torch.relu(torch.randn(shape)).round(decimals=1)
        with torch.inference_mode():
            assert torch.equal(MaxPool2x2()(x), nn.MaxPool2d(2)(x))
        leaf = x.clone().requires_grad_()
        grad = torch.randn(MaxPool2x2()(x).shape)
        ours = torch.autograd.grad(MaxPool2x2()(leaf), leaf, grad)[0]
        theirs = torch.autograd.grad(nn.MaxPool2d(2)(leaf), leaf, grad)[0]
        assert torch.equal(ours, theirs)  # with autograd it is the kernel itself
