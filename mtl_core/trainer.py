"""The step loop: config -> suite + architecture + method -> StepRecords.

One loop serves both kinds of method. A loss weighting backpropagates ``weights @ losses`` once; a
gradient aggregation takes the task Jacobian on the shared parameters (T reverse passes that also
give each head its own gradient) and writes the aggregated direction into their ``.grad``. New
methods plug in through the registries; nothing here names one.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from mtl_core.affinity import lookahead_affinity, lookahead_steps
from mtl_core.aggregation import Aggregator, make_aggregator
from mtl_core.architectures import ARCHITECTURES
from mtl_core.architectures.base import MTLModel
from mtl_core.config import RunConfig
from mtl_core.conflict import layer_cosines, layer_groups
from mtl_core.devices import resolve_device
from mtl_core.jacobian import (
    cosine_matrix,
    cosine_with,
    gradient_norms,
    jacobian_and_other_grads,
    set_flat_grad,
    task_jacobian,
)
from mtl_core.methods import METHODS
from mtl_core.records import StepRecord
from mtl_core.suites import build_suite
from mtl_core.suites.base import SuiteData
from mtl_core.weighting import TrainerHooks, Weighting, make_weighting

_EVAL_BATCH = 4096


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

        method = METHODS[config.method]
        self.weighting: Weighting | None = None
        self.aggregator: Aggregator | None = None
        trainable = list(self.model.parameters())
        if method.kind == "weighting":
            self.weighting = make_weighting(config.method, len(self.tasks), **config.method_params)
            self.weighting.to(self.device)
            self.weighting.attach(TrainerHooks(
                last_shared_grad_norms=self._last_shared_grad_norms, losses_now=self._losses_now,
                steps_per_epoch=max(1, self.x_train.shape[0] // min(config.batch_size, self.x_train.shape[0]))))
            trainable += list(self.weighting.parameters())
        else:
            self.aggregator = make_aggregator(config.method, len(self.tasks), **config.method_params)
            if not self.shared:
                raise ValueError(f"{method.name} combines the tasks' gradients on shared parameters, and "
                                 f"{ARCHITECTURES[config.arch].name} shares none: pick a sharing "
                                 "architecture, or a loss weighting")
            if self.aggregator.space == "features" and not self._has_representation():
                raise ValueError(f"this variant of {method.name} reads the one shared representation "
                                 f"every task head reads, and {ARCHITECTURES[config.arch].name} has none "
                                 "(its tasks read different mixtures): use the variant on the parameters, "
                                 "or hard parameter sharing")
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
        self._finish("done", self.message)

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
            bad = [t for t, value in zip(self.tasks, losses.tolist(), strict=True) if not math.isfinite(value)]
            self._finish("diverged", f"the loss of {', '.join(bad)} became non-finite at step {step}; "
                                     f"the {step - 1} steps before it are kept")
            return None

        probe = bool(self.shared) and self.config.probe_every > 0 and (
            step == 1 or step % self.config.probe_every == 0)
        self.optimizer.zero_grad(set_to_none=True)
        jacobian: Tensor | None = None
        update: Tensor | None = None
        if self.weighting is not None:
            weights = self.weighting.weights(losses, step)
            if probe or measure:
                jacobian = task_jacobian(losses, self.shared)
                update = weights.detach() @ jacobian
            ((weights * losses).sum() + self.weighting.regularizer() + self.model.regularizer()).backward()
            message = self.weighting.message
        elif self.aggregator.space == "features":
            if self.model.representation is None:
                raise RuntimeError(f"{type(self.model).__name__} does not expose its shared representation")
            aggregation = self.aggregator(task_jacobian(losses, [self.model.representation]))
            if aggregation.weights is None:
                raise RuntimeError("a features-space aggregation must return task weights")
            weights = aggregation.weights.detach()
            if probe or measure:
                jacobian = task_jacobian(losses, self.shared)
                update = weights @ jacobian
            ((weights * losses).sum() + self.model.regularizer()).backward()
            message = aggregation.message
        else:
            jacobian = jacobian_and_other_grads(losses, self.shared, self.others)
            aggregation = self.aggregator(jacobian)
            set_flat_grad(self.shared, aggregation.update)
            _accumulate(self.model.regularizer())
            update = aggregation.update
            weights = aggregation.weights if aggregation.weights is not None else torch.full_like(losses, math.nan)
            message = aggregation.message
        affinity = None
        if measure and jacobian is not None:  # before the step: Z compares theta_t with its lookaheads
            affinity = lookahead_affinity(self._losses_now, self.shared, losses,
                                          lookahead_steps(self.optimizer, jacobian.detach()),
                                          rng_state=rng_state)
        self.optimizer.step()
        if self.weighting is not None:
            self.weighting.after_step(step)

        record = StepRecord(
            step=step,
            time_s=time.perf_counter() - start,
            loss=dict(zip(self.tasks, losses.tolist(), strict=True)),
            weight=dict(zip(self.tasks, weights.detach().tolist(), strict=True)),
        )
        if message and message != self._method_message:
            # A method's news (a solver that failed and fell back) goes on the run as it happens.
            self._method_message = message
            self.message = record.message = f"step {step}: {message}"
        if probe and jacobian is not None and update is not None:
            record.grad_norm = dict(zip(self.tasks, gradient_norms(jacobian).tolist(), strict=True))
            record.cosine = cosine_matrix(jacobian).tolist()
            record.update_norm = update.norm().item()
            record.cos_update = dict(zip(self.tasks, cosine_with(update, jacobian).tolist(), strict=True))
            if len(self.tasks) > 1:
                record.layer_cosine = layer_cosines(jacobian.detach(), self.layers, self.tasks)
        if affinity is not None:
            record.affinity = affinity.tolist()
        return record

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
