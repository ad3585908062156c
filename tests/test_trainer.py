"""The trainer: determinism, records, divergence, stopping, the demo's accuracy."""

from __future__ import annotations

import math

import pytest
import torch

from mtl_core.config import RunConfig
from mtl_core.engine.trainer import Trainer
from mtl_core.methods.base import Aggregation, Aggregator


def tiny(**changes) -> RunConfig:
    base = {"suite": "synthetic", "suite_params": {"train_size": 2000}, "steps": 40, "eval_every": 20,
            "probe_every": 5, "batch_size": 64}
    return RunConfig.parse({**base, **changes})


def test_same_config_gives_the_same_numbers_and_another_seed_does_not():
    def losses(config):
        return [(r.loss, r.weight, r.cosine, r.val) for r in Trainer(config).run()]

    assert losses(tiny()) == losses(tiny())
    assert losses(tiny()) != losses(tiny(seed=1))


def test_records_carry_losses_weights_probes_and_evals():
    config = tiny(steps=20, eval_every=10, probe_every=5)
    trainer = Trainer(config)
    records = list(trainer.run())
    assert trainer.status == "done" and trainer.message is None
    assert [r.step for r in records] == list(range(1, 21))
    assert all(set(r.loss) == {"y1", "y2"} and r.weight == {"y1": 1.0, "y2": 1.0} for r in records)
    assert all(b.time_s >= a.time_s for a, b in zip(records, records[1:], strict=False))
    probed = [r.step for r in records if r.cosine is not None]
    assert probed == [1, 5, 10, 15, 20]
    first = records[0]
    cosine = torch.tensor(first.cosine)
    assert cosine.shape == (2, 2) and torch.allclose(cosine.diagonal(), torch.ones(2), atol=1e-5)
    assert torch.allclose(cosine, cosine.T)
    assert all(v > 0 for v in first.grad_norm.values())
    # EW's update is g1 + g2, so its cosine with each task gradient follows from the cosine matrix.
    g1, g2 = first.grad_norm["y1"], first.grad_norm["y2"]
    c = first.cosine[0][1]
    update_norm = math.sqrt(g1**2 + g2**2 + 2 * g1 * g2 * c)
    assert math.isclose(first.update_norm, update_norm, rel_tol=1e-4)
    assert math.isclose(first.cos_update["y1"], (g1 + g2 * c) / update_norm, rel_tol=1e-4)
    evaluated = [r.step for r in records if r.val is not None]
    assert evaluated == [10, 20]
    assert set(records[-1].val["y1"]) == {"loss", "mse"}
    assert math.isclose(records[-1].val["y1"]["loss"], records[-1].val["y1"]["mse"], rel_tol=1e-6)


def test_probe_every_zero_never_probes_and_stl_has_nothing_to_probe():
    assert all(r.cosine is None for r in Trainer(tiny(probe_every=0)).run())
    assert all(r.cosine is None and r.grad_norm is None for r in Trainer(tiny(arch="stl")).run())


def test_training_lowers_the_loss():
    records = list(Trainer(tiny(steps=200, eval_every=200)).run())
    early = sum(records[0].loss.values())
    late = sum(sum(r.loss.values()) for r in records[-20:]) / 20
    assert late < 0.5 * early


def test_a_diverging_run_stops_with_status_diverged_and_keeps_its_records():
    trainer = Trainer(tiny(optimizer="sgd", lr=10.0, steps=200))
    records = list(trainer.run())
    assert trainer.status == "diverged"
    assert 0 < len(records) < 200
    assert all(math.isfinite(v) for r in records for v in r.loss.values())
    assert f"at step {len(records) + 1}" in trainer.message


def test_should_stop_ends_the_run_before_the_next_step():
    trainer = Trainer(tiny(steps=100))
    records = []
    for record in trainer.run(should_stop=lambda: len(records) >= 7):
        records.append(record)
    assert len(records) == 7 and trainer.status == "stopped"


def test_stl_heads_and_trunks_are_independent():
    trainer = Trainer(tiny(arch="stl", steps=1))
    assert trainer.shared == []
    y1_params = {id(p) for p in trainer.model.task_parameters("y1")}
    assert y1_params.isdisjoint(id(p) for p in trainer.model.task_parameters("y2"))


def test_a_gradient_method_on_an_architecture_that_shares_nothing_is_refused_clearly():
    with pytest.raises(ValueError, match="shares none: pick a sharing architecture, or a loss weighting"):
        Trainer(tiny(arch="stl", method="pcgrad"))


def test_a_features_space_method_needs_one_shared_representation():
    with pytest.raises(ValueError, match="variant on the parameters"):
        Trainer(tiny(arch="mmoe", method="mgda", method_params={"variant": "ub"}))
    assert Trainer(tiny(arch="mmoe", method="mgda", method_params={"variant": "exact"})).aggregator.space == "parameters"


class _FailsFromStepThree(Aggregator):
    """A stand-in gradient method whose solver gives up from its third call on."""

    def __init__(self, n_tasks: int) -> None:
        super().__init__(n_tasks)
        self.calls = 0

    def __call__(self, jacobian, /):
        self.calls += 1
        message = "solver failed, fell back to the mean" if self.calls >= 3 else None
        return Aggregation(update=jacobian.mean(dim=0), weights=torch.full((2,), 0.5), message=message)


def test_a_methods_message_goes_on_the_run_at_the_step_it_first_appears():
    trainer = Trainer(tiny(method="pcgrad", steps=6))
    trainer.aggregator = _FailsFromStepThree(2)
    records = list(trainer.run())
    assert [r.message for r in records] == [None, None, "step 3: solver failed, fell back to the mean",
                                            None, None, None]
    assert trainer.status == "done" and trainer.message == "step 3: solver failed, fell back to the mean"
    assert all(r.weight == {"y1": 0.5, "y2": 0.5} for r in records)


@pytest.mark.parametrize("method", ["ew", "pcgrad"])
def test_a_penalty_of_the_architecture_is_part_of_the_objective(method):
    """Soft sharing's penalty: its gradient reaches the parameters with a loss weighting and
    after a gradient method's aggregation alike."""
    def first_head_weight(trainer):
        return next(iter(trainer.model.heads["y1"].parameters()))

    penalised, plain = (Trainer(tiny(method=method, steps=1, probe_every=0)) for _ in range(2))
    assert torch.equal(first_head_weight(penalised), first_head_weight(plain))  # same seed, same start
    weight = first_head_weight(penalised)
    penalised.model.regularizer = lambda: 1e3 * weight.square().sum()
    list(penalised.run())
    list(plain.run())
    # One Adam step moves every entry by about lr; the penalty's pull toward 0 decides the sign.
    assert first_head_weight(penalised).abs().sum() < first_head_weight(plain).abs().sum()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("suite", ["synthetic", "multidigits"])
def test_auto_trains_on_the_gpu_with_the_cpus_batches_and_close_numbers(suite):
    config = tiny(suite=suite, suite_params={}, steps=10, probe_every=5, affinity_every=5, device="auto")
    gpu = Trainer(config)
    assert gpu.device == "cuda" and next(gpu.model.parameters()).is_cuda
    on_gpu = list(gpu.run())
    on_cpu = list(Trainer(config.model_copy(update={"device": "cpu"})).run())
    assert gpu.status == "done" and len(on_gpu) == 10
    for ours, theirs in zip(on_gpu, on_cpu, strict=True):  # same batches, float32 on both
        assert ours.loss == pytest.approx(theirs.loss, rel=1e-3)
    assert on_gpu[-1].cosine is not None and on_gpu[-1].val is not None
    # The per-layer cosines and the lookahead affinity run on the GPU too.
    assert on_gpu[-1].layer_cosine and on_gpu[-1].affinity is not None
    assert all(math.isfinite(v) for row in on_gpu[-1].affinity for v in row)


def test_asking_for_an_absent_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        Trainer(tiny(device="cuda"))


@pytest.mark.slow
def test_the_default_demo_reaches_90_percent_on_both_digits():
    trainer = Trainer(RunConfig())
    records = list(trainer.run())
    final = records[-1].val
    assert trainer.status == "done"
    assert final["left"]["accuracy"] >= 0.90 and final["right"]["accuracy"] >= 0.90, final
