"""The step loop: config -> suite + architecture + method -> StepRecords.

One loop serves every kind of method, each kind in its own function: a loss weighting
backpropagates ``weights @ losses`` once; an aggregation on the shared representation (MGDA-UB)
weighs the tasks from their gradients on the features, then does the same; a gradient aggregation
takes the task Jacobian on the shared parameters (T reverse passes that also give each head its own
gradient) and writes the aggregated direction into their ``.grad``. New methods plug in through the
registries; nothing here names one. Probe steps add diagnostics of the task gradients, and
measuring steps TAG's lookahead affinity (:mod:`mtl_core.engine.lookahead`).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mtl_core.architectures import ARCHITECTURES
from mtl_core.architectures.base import MTLModel
from mtl_core.config import RunConfig
from mtl_core.engine.conflict import layer_cosines, layer_groups
from mtl_core.engine.devices import resolve_device
from mtl_core.engine.jacobian import (
    cosine_matrix,
    cosine_with,
    gradient_norms,
    jacobian_and_other_grads,
    set_flat_grad,
    task_jacobian,
)
from mtl_core.engine.lookahead import lookahead_affinity, lookahead_steps
from mtl_core.engine.records import StepRecord
from mtl_core.methods import METHODS, make_aggregator, make_weighting
from mtl_core.methods.base import Aggregator, TrainerHooks, Weighting
from mtl_core.suites import build_suite
from mtl_core.suites.base import SuiteData

_EVAL_BATCH = 4096


@dataclass
class Direction:
    """What a method made of a step's losses (its update is already in the parameters' ``.grad``)."""

    weights: Tensor  # [T] the tasks' weights; NaN where an aggregation has none
    jacobian: Tensor | None  # [T, P] the task gradients on the shared parameters, when taken
    update: Tensor | None  # [P] the shared parameters' update direction, when known
    message: str | None  # the method's news on this step (a solver that fell back)


class Trainer:
    """Builds everything a run needs from its config, then yields a StepRecord per step.

    ``status`` is "pending" until ``run()`` ends, then "done", "stopped" or "diverged";
    ``message`` says why when it is not "done" (or what a method had to fall back on).
    """

    def __init__(self, config: RunConfig, *, suite: SuiteData | None = None) -> None:
        self.config = config
        self.tasks = config.tasks
        self.device = resolve_device(config.device)
        _seed_everything(config.seed)
        self.suite = suite or build_suite(config.suite, config.suite_params)
        self.x_train = self.suite.x_train.to(self.device)
        self.y_train = {t: self.suite.y_train[t].to(self.device) for t in self.tasks}
        self.x_val = self.suite.x_val.to(self.device)
        self.y_val = {t: self.suite.y_val[t].to(self.device) for t in self.tasks}

        factory = ARCHITECTURES[config.arch].load()
        self.model: MTLModel = factory(self.suite, self.tasks, **config.arch_params).to(self.device)
        self.shared = list(self.model.shared_parameters())
        self.others = _other_parameters(self.model, self.shared)

        self.last_shared = self.model.last_shared_parameters()
        # Columns of the shared Jacobian by layer, for the per-layer conflict view on probe steps.
        self.layers = layer_groups(self.model.named_parameters(), self.shared)

        self.weighting: Weighting | None = None
        self.aggregator: Aggregator | None = None
        trainable = list(self.model.parameters())
        if METHODS[config.method].kind == "weighting":
            trainable += self._make_weighting()
        else:
            self._make_aggregator()
        self.optimizer = _make_optimizer(config, trainable)
        # Batches are drawn on the CPU so the same seed gives the same batches on every device.
        self.generator = torch.Generator().manual_seed(config.seed)
        self.batch: Tensor | None = None
        self.status = "pending"
        self.message: str | None = None
        self._method_message: str | None = None

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> Iterator[StepRecord]:
        config = self.config
        for method in (self.weighting, self.aggregator):
            if method is not None:
                method.reset()
        batches = self._batches()
        start = time.perf_counter()
        for step in range(1, config.steps + 1):
            if should_stop():
                self._finish("stopped", f"stopped by the user after step {step - 1}")
                return
            record = self._step(step, next(batches), start)
            if record is None:
                return
            if step % config.eval_every == 0 or step == config.steps:
                record.val = self.evaluate()
            if config.snapshot_every and (step % config.snapshot_every == 0 or step == 1):
                record.snapshot = self.model.sharing_snapshot() or None
            yield record
            if record.affinity is not None and not _all_finite(record.affinity):
                # A lookahead is this step's update taken alone: a non-finite loss there says the
                # next real step overflows too. End the run now, keeping this step (its affinity
                # is stored as missing), rather than record non-finite affinities until it does.
                self._finish("diverged", f"a lookahead step of the task affinity made the loss "
                                         f"non-finite at step {step}; the {step} steps so far are kept")
                return
        self._finish("done", self.message)

    def _make_weighting(self) -> list[torch.nn.Parameter]:
        """The run's loss weighting, hooked to the trainer; returns its own trainable parameters."""
        config = self.config
        self.weighting = make_weighting(config.method, len(self.tasks), **config.method_params)
        self.weighting.to(self.device)
        self.weighting.attach(TrainerHooks(
            last_shared_grad_norms=self._last_shared_grad_norms, losses_now=self._losses_now,
            steps_per_epoch=max(1, self.x_train.shape[0] // min(config.batch_size, self.x_train.shape[0]))))
        return list(self.weighting.parameters())

    def _make_aggregator(self) -> None:
        """The run's gradient aggregation, once the architecture is known to give it what it reads."""
        config = self.config
        method, arch = METHODS[config.method].name, ARCHITECTURES[config.arch].name
        self.aggregator = make_aggregator(config.method, len(self.tasks), **config.method_params)
        if not self.shared:
            raise ValueError(f"{method} combines the tasks' gradients on shared parameters, and "
                             f"{arch} shares none: pick a sharing architecture, or a loss weighting")
        if self.aggregator.space == "features" and not self._has_representation():
            raise ValueError(f"this variant of {method} reads the one shared representation "
                             f"every task head reads, and {arch} has none "
                             "(its tasks read different mixtures): use the variant on the parameters, "
                             "or hard parameter sharing")

    @torch.no_grad()
    def _has_representation(self) -> bool:
        self.model(self.x_train[:2])
        return self.model.representation is not None

    def _losses(self, batch: Tensor) -> Tensor:
        outputs = self.model(self.x_train[batch])
        return torch.stack([self.suite.loss(t, outputs[t], self.y_train[t][batch]) for t in self.tasks])

    def _last_shared_grad_norms(self, losses: Tensor) -> Tensor | None:
        if not self.last_shared:
            return None
        return gradient_norms(task_jacobian(losses, self.last_shared)).detach()

    @torch.no_grad()
    def _losses_now(self) -> Tensor:
        assert self.batch is not None, "losses_now() is for use during a step"
        return self._losses(self.batch)

    def _step(self, step: int, batch: Tensor, start: float) -> StepRecord | None:
        self.model.train()
        self.batch = batch
        # Lookahead task affinity (TAG) on this step: the lookaheads replay its random numbers.
        measure = bool(self.shared) and self.config.affinity_every > 0 and step % self.config.affinity_every == 0
        rng_state = torch.get_rng_state() if measure else None
        losses = self._losses(batch)
        if not torch.isfinite(losses).all():
            self._diverged(step, losses)
            return None
        probe = bool(self.shared) and self.config.probe_every > 0 and (
            step == 1 or step % self.config.probe_every == 0)
        self.optimizer.zero_grad(set_to_none=True)
        direction = self._direction(losses, step, with_jacobian=probe or measure)
        affinity = None
        if measure and direction.jacobian is not None:  # before the step: Z compares theta_t with its lookaheads
            affinity = self._lookahead(losses, direction.jacobian, rng_state)
        self.optimizer.step()
        if self.weighting is not None:
            self.weighting.after_step(step)
        record = StepRecord(
            step=step,
            time_s=time.perf_counter() - start,
            loss=dict(zip(self.tasks, losses.tolist(), strict=True)),
            weight=dict(zip(self.tasks, direction.weights.detach().tolist(), strict=True)),
        )
        self._note(record, direction.message)
        if probe and direction.jacobian is not None and direction.update is not None:
            self._diagnose(record, direction.jacobian, direction.update)
        if affinity is not None:
            record.affinity = affinity.tolist()
        return record

    def _diverged(self, step: int, losses: Tensor) -> None:
        bad = [t for t, value in zip(self.tasks, losses.tolist(), strict=True) if not math.isfinite(value)]
        self._finish("diverged", f"the loss of {', '.join(bad)} became non-finite at step {step}; "
                                 f"the {step - 1} steps before it are kept")

    # --- one step's direction, by the method's kind: each writes the shared parameters' .grad ---

    def _direction(self, losses: Tensor, step: int, *, with_jacobian: bool) -> Direction:
        """The method's step on ``losses``, written into the parameters' ``.grad``. The Jacobian on
        the shared parameters comes back when the step needs it (``with_jacobian``: a probe or a
        lookahead) or when the method takes it anyway (a Jacobian aggregation)."""
        if self.weighting is not None:
            return self._weigh_losses(losses, step, with_jacobian)
        if self.aggregator.space == "features":
            return self._aggregate_features(losses, with_jacobian)
        return self._aggregate_jacobian(losses)

    def _weigh_losses(self, losses: Tensor, step: int, with_jacobian: bool) -> Direction:
        """A loss weighting: one backward pass of ``weights @ losses`` (and the penalties)."""
        weights = self.weighting.weights(losses, step)
        jacobian = update = None
        if with_jacobian:
            jacobian = task_jacobian(losses, self.shared)
            update = weights.detach() @ jacobian
        ((weights * losses).sum() + self.weighting.regularizer() + self.model.regularizer()).backward()
        return Direction(weights, jacobian, update, self.weighting.message)

    def _aggregate_features(self, losses: Tensor, with_jacobian: bool) -> Direction:
        """An aggregation on the shared representation (MGDA-UB): it weighs the tasks from the
        Jacobian on the features, then one backward pass of ``weights @ losses``."""
        if self.model.representation is None:
            raise RuntimeError(f"{type(self.model).__name__} does not expose its shared representation")
        aggregation = self.aggregator(task_jacobian(losses, [self.model.representation]))
        if aggregation.weights is None:
            raise RuntimeError("a features-space aggregation must return task weights")
        weights = aggregation.weights.detach()
        jacobian = update = None
        if with_jacobian:
            jacobian = task_jacobian(losses, self.shared)
            update = weights @ jacobian
        ((weights * losses).sum() + self.model.regularizer()).backward()
        return Direction(weights, jacobian, update, aggregation.message)

    def _aggregate_jacobian(self, losses: Tensor) -> Direction:
        """An aggregation of the task Jacobian on the shared parameters: T reverse passes (which
        also give each head its gradient), then the aggregated direction into their ``.grad``."""
        jacobian = jacobian_and_other_grads(losses, self.shared, self.others)
        aggregation = self.aggregator(jacobian)
        set_flat_grad(self.shared, aggregation.update)
        _accumulate(self.model.regularizer())
        weights = aggregation.weights if aggregation.weights is not None else torch.full_like(losses, math.nan)
        return Direction(weights, jacobian, aggregation.update, aggregation.message)

    # --- what a step records besides its losses and weights ---------------------------------------

    def _lookahead(self, losses: Tensor, jacobian: Tensor, rng_state: Tensor | None) -> Tensor:
        """TAG's lookahead affinity Z on this step's batch, the parameters as they were before it."""
        return lookahead_affinity(self._losses_now, self.shared, losses,
                                  lookahead_steps(self.optimizer, jacobian.detach()), rng_state=rng_state)

    def _note(self, record: StepRecord, message: str | None) -> None:
        """A method's news (a solver that failed and fell back) goes on the run as it happens."""
        if message and message != self._method_message:
            self._method_message = message
            self.message = record.message = f"step {record.step}: {message}"

    def _diagnose(self, record: StepRecord, jacobian: Tensor, update: Tensor) -> None:
        """A probe step's diagnostics: each task's gradient norm, their cosines (overall and per
        layer), the update's norm and its cosine with each task's gradient."""
        record.grad_norm = dict(zip(self.tasks, gradient_norms(jacobian).tolist(), strict=True))
        record.cosine = cosine_matrix(jacobian).tolist()
        record.update_norm = update.norm().item()
        record.cos_update = dict(zip(self.tasks, cosine_with(update, jacobian).tolist(), strict=True))
        if len(self.tasks) > 1:
            record.layer_cosine = layer_cosines(jacobian.detach(), self.layers, self.tasks)

    @torch.no_grad()
    def evaluate(self) -> dict[str, dict[str, float]]:
        """Validation loss and metric of every task, on the whole validation set."""
        self.model.eval()
        chunks = [self.model(x) for x in self.x_val.split(_EVAL_BATCH)]
        results = {}
        for task in self.tasks:
            prediction = torch.cat([chunk[task] for chunk in chunks])
            target = self.y_val[task]
            results[task] = {
                "loss": self.suite.loss(task, prediction, target).item(),
                self.suite.task(task).metric: self.suite.metric(task, prediction, target),
            }
        return results

    def _batches(self) -> Iterator[Tensor]:
        """Shuffled mini-batches, epoch after epoch (every example once per epoch)."""
        size = self.x_train.shape[0]
        batch = min(self.config.batch_size, size)
        while True:
            order = torch.randperm(size, generator=self.generator)
            for begin in range(0, size - batch + 1, batch):
                yield order[begin: begin + batch].to(self.device)

    def _finish(self, status: str, message: str | None) -> None:
        self.status = status
        self.message = message


def _accumulate(penalty: Tensor | float) -> None:
    """Add a penalty's gradient to the ``.grad`` already written (after the aggregation)."""
    if isinstance(penalty, Tensor) and penalty.requires_grad:
        penalty.backward()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _other_parameters(model: MTLModel, shared: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    """Everything not shared; checks that shared + task parameters partition the model."""
    shared_ids = {id(p) for p in shared}
    task_ids: dict[int, str] = {}
    for task in model.tasks:
        for param in model.task_parameters(task):
            if id(param) in shared_ids or id(param) in task_ids:
                raise RuntimeError(f"{type(model).__name__}: a parameter of task {task!r} is listed twice")
            task_ids[id(param)] = task
    others = [p for p in model.parameters() if id(p) not in shared_ids]
    if {id(p) for p in others} != set(task_ids):
        raise RuntimeError(f"{type(model).__name__}: shared and task parameters do not cover the model")
    return others


def _make_optimizer(config: RunConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    return torch.optim.SGD(params, lr=config.lr)


def _all_finite(matrix: list[list[float]]) -> bool:
    return all(math.isfinite(value) for row in matrix for value in row)
