"""Lookahead task affinity (TAG): the formula on models where the answer is known, the optimiser's
lookahead step, and the trainer recording it without disturbing training."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from mtl_core.config import ConfigError, RunConfig
from mtl_core.engine.jacobian import task_jacobian
from mtl_core.engine.lookahead import lookahead_affinity, lookahead_steps
from mtl_core.engine.trainer import Trainer
from mtl_core.runs.store import Store
from mtl_core.studies.affinity import AFFINITY_MATRIX, mean_matrix, measured_steps, run_affinities


class LinearTasks:
    """One shared weight vector w; each task is a least-squares fit of X w to a target:
    ``a`` and ``twin`` fit the same target y, ``negated`` fits -y, ``other`` an unrelated z
    (y and z are X times two independent random vectors)."""

    def __init__(self, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(64, 5, generator=generator)
        # Targets the model can fit, far from where it starts: the answers are clear-cut.
        y = self.x @ torch.randn(5, generator=generator)
        z = self.x @ torch.randn(5, generator=generator)
        self.targets = {"a": y, "twin": y.clone(), "negated": -y, "other": z}
        self.tasks = list(self.targets)
        self.w = torch.nn.Parameter(0.1 * torch.randn(5, generator=generator))

    def losses(self) -> torch.Tensor:
        prediction = self.x @ self.w
        return torch.stack([(prediction - target).square().mean() for target in self.targets.values()])

    def loss_at(self, w: torch.Tensor, task: str) -> float:
        return (self.x @ w - self.targets[task]).square().mean().item()


def test_lookahead_affinity_is_the_papers_formula_with_an_sgd_step():
    model = LinearTasks()
    losses = model.losses()
    jacobian = task_jacobian(losses, [model.w])
    lr = 0.05
    steps = lookahead_steps(torch.optim.SGD([model.w], lr=lr), jacobian)
    assert torch.allclose(steps, lr * jacobian)
    z = lookahead_affinity(model.losses, [model.w], losses, steps)
    w = model.w.detach()
    for i in range(len(model.tasks)):
        moved = w - lr * jacobian[i]
        for j, target in enumerate(model.tasks):
            expected = 1 - model.loss_at(moved, target) / model.loss_at(w, target)
            assert z[i, j].item() == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_identical_tasks_have_the_largest_affinity_and_a_negated_task_conflicts():
    model = LinearTasks(seed=3)
    losses = model.losses()
    jacobian = task_jacobian(losses, [model.w])
    z = lookahead_affinity(model.losses, [model.w], losses,
                           lookahead_steps(torch.optim.SGD([model.w], lr=0.05), jacobian))
    a, twin, negated, other = range(4)
    # A step for "a" helps its twin exactly as much as itself, more than any other task ...
    assert z[a, twin].item() == pytest.approx(z[a, a].item(), rel=1e-5)
    assert z[a, twin] > z[a, other] and z[a, twin] > z[a, negated]
    assert z[twin, a] == max(z[source, a] for source in range(4))
    # ... and hurts the task that wants the opposite, which hurts it back.
    assert z[a, negated] < 0 and z[negated, a] < 0


def test_the_lookahead_restores_the_parameters_and_the_random_stream():
    model = LinearTasks()
    before = model.w.detach().clone()
    losses = model.losses()
    steps = torch.ones(4, 5)
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    lookahead_affinity(model.losses, [model.w], losses, steps)
    assert torch.equal(model.w.detach(), before)
    assert torch.equal(torch.rand(3), expected_next)


def test_random_layers_draw_the_same_numbers_in_every_lookahead():
    model = LinearTasks()
    state = torch.get_rng_state()

    def noisy_losses() -> torch.Tensor:  # a layer with noise: the same draw, the same loss
        return model.losses() + torch.rand(1)

    losses = noisy_losses()
    z = lookahead_affinity(noisy_losses, [model.w], losses, torch.zeros(4, 5), rng_state=state)
    assert torch.allclose(z, torch.zeros(4, 4), atol=1e-6)  # no step: no change, noise and all


def test_the_lookahead_takes_the_papers_sgd_step_whatever_the_optimiser():
    model = LinearTasks()
    jacobian = task_jacobian(model.losses(), [model.w])
    for optimizer in (torch.optim.SGD([model.w], lr=0.02), torch.optim.Adam([model.w], lr=0.02)):
        assert torch.allclose(lookahead_steps(optimizer, jacobian), 0.02 * jacobian)


# --- in the trainer -----------------------------------------------------------------------------

def synthetic(**changes) -> RunConfig:
    base = {"suite": "synthetic", "suite_params": {"train_size": 2000}, "steps": 20, "eval_every": 20,
            "probe_every": 5, "batch_size": 64, "device": "cpu"}
    return RunConfig.parse({**base, **changes})


@pytest.mark.parametrize("method", ["ew", "pcgrad", "uw"])
def test_the_trainer_records_affinity_every_k_steps_without_changing_training(method):
    config = synthetic(method=method, affinity_every=4)
    with_tag = list(Trainer(config).run())
    without = list(Trainer(config.model_copy(update={"affinity_every": 0})).run())
    assert [r.step for r in with_tag if r.affinity is not None] == [4, 8, 12, 16, 20]
    assert all(r.affinity is None for r in without)
    shape = [len(row) for row in with_tag[3].affinity]
    assert shape == [2, 2]
    # The lookaheads leave no trace: the same losses, step for step, as the run without them.
    assert [r.loss for r in with_tag] == [r.loss for r in without]


def test_no_shared_parameters_no_affinity():
    assert all(r.affinity is None for r in Trainer(synthetic(arch="stl", affinity_every=2)).run())


def test_stored_affinity_reads_back_as_the_mean_matrix(tmp_path):
    store = Store(tmp_path / "mtl.db")
    config = synthetic(affinity_every=5)
    run_id = store.create_run(config, status="running")
    records = list(Trainer(config).run())
    store.append(run_id, records)
    assert measured_steps(store, run_id) == 4
    found = run_affinities(store, run_id)
    assert set(found) == {"tag", "cosine"}
    expected = torch.tensor([r.affinity for r in records if r.affinity is not None], dtype=torch.float64).mean(0)
    assert found["tag"].to_numpy() == pytest.approx(expected.numpy(), rel=1e-6)
    assert list(found["tag"].index) == list(found["tag"].columns) == ["y1", "y2"]
    cosines = torch.tensor([r.cosine for r in records if r.cosine is not None], dtype=torch.float64).mean(0)
    assert found["cosine"].to_numpy() == pytest.approx(cosines.numpy(), rel=1e-6)


def test_mean_matrix_skips_missing_entries_and_missing_matrices():
    frame = pd.DataFrame({"step": [1, 2], "name": [AFFINITY_MATRIX] * 2,
                          "value": [[[1.0, float("nan")], [3.0, 4.0]], [[3.0, 2.0], [5.0, 6.0]]]})
    mean = mean_matrix(frame, AFFINITY_MATRIX, ["a", "b"])
    assert mean.to_numpy().tolist() == [[2.0, 2.0], [4.0, 5.0]]
    assert mean_matrix(frame, "cosine", ["a", "b"]) is None


def test_affinity_every_is_validated_in_words():
    with pytest.raises(ConfigError, match="affinity_every: must be greater than or equal to 0"):
        RunConfig.parse({"affinity_every": -1})
    assert RunConfig().affinity_every == 0  # off by default: existing runs do not pay for it
