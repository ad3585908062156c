"""The trainer: determinism, records, divergence, stopping, the demo's accuracy."""

from __future__ import annotations

import math

import pytest
import torch

from mtl_core.config import RunConfig
from mtl_core.trainer import Trainer


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
