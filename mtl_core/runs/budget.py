"""What a run will cost, from its config alone: peak memory and seconds per step, before it is queued.

A served app must refuse a run the machine cannot hold *before* a worker starts on it: one link
(PLE, 4 levels of 16 + 6 x 16 experts of 256 units, batch 8,192, CAGrad) once held 13 GiB and made
no step in 150 s. So the job manager's caps (:mod:`mtl_core.runs.limits`) ask this module first.

How: the run's architecture is built on torch's ``meta`` device (shapes, no storage: nothing is
allocated, nothing initialised) and one training step's work is traced there at the run's real
batch size -- the forward pass, the task losses and one reverse pass -- by a dispatch mode that
counts every operation, its FLOPs (torch's own FLOP formulas, :mod:`torch.utils.flop_counter`),
the bytes it writes, and the bytes alive at each moment (a tensor counts from the operation that
makes it until it is freed, so what autograd saves for the backward counts until the end). On top
of that trace, by the trainer's rules (:mod:`mtl_core.engine.trainer`):

- memory = parameters x (1 + 1 gradient + 2 for Adam's moments) + the training data on the device
  + the traced step's peak + the task Jacobian (T x shared parameters floats, twice: the rows and
  their stack, once more for the method's work on it) when the step takes it;
- a step = forward + reverse passes: one for a loss weighting, T (one per task, the Jacobian) for a
  gradient method and, as an average, T / ``probe_every`` more for a loss weighting's probe steps;
  plus a forward pass over the validation set every ``eval_every`` steps and one over the
  architecture's probe inputs every ``snapshot_every`` steps;
- seconds = FLOPs / the machine's matmul speed + bytes written / its memory bandwidth +
  operations x its cost of one small operation, the three measured once per process on the
  worker's thread count (:func:`machine_speed`, ~50 ms).

Only one reverse pass is traced: T passes through the same graph cost about T times one (each
task's loss reaches nearly all of a shared network), and tracing all of them would take seconds
for the largest set-ups. The data are not built (synthetic data take a second to draw): their
shapes come from :func:`data_shapes`.

Checked against real runs (``tests/test_budget.py`` holds it within 3x; figures in issue 16's
report): a worker's peak resident-memory rise was 0.74-1.46x the memory estimate, its CPU seconds per
step 1.2-2.0x the traced work's (the trainer's Python and allocations the trace does not see), hence
``CALIBRATION``.
Importing this module does not import torch (the job manager holds no torch until it checks a run);
the first estimate in a process pays torch's import and its meta kernels' first use (~3 s, see
:func:`warm_up`). A served app makes its estimates in a child process instead
(:mod:`mtl_core.runs.estimator`): its own interpreter neither imports
torch for them nor holds its lock while one traces.
"""

from __future__ import annotations

import functools
import math
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import RunConfig
from mtl_core.methods import METHODS
from mtl_core.suites import SUITES

if TYPE_CHECKING:  # torch is imported where an estimate is made, not when the job manager starts
    import torch

FLOAT_BYTES = 4
EVAL_CHUNK = 4096  # mtl_core.engine.trainer._EVAL_BATCH: evaluation runs in chunks of this size
SNAPSHOT_INPUTS = 256  # mtl_core.architectures.parts.PROBE_SIZE: a sharing snapshot's forward pass
ADAM_MOMENTS = 2  # exp_avg and exp_avg_sq, one float each per parameter
# Adam's foreach update reads/writes parameter, gradient and both moments ~3 times over, in ~8
# kernels per parameter tensor; the trainer's per-step Python costs about as much as this many small
# operations (measured: a 2-layer MLP step on 2 samples, ~2 ms, most of it Python).
ADAM_PASSES = 12
ADAM_OPS_PER_TENSOR = 8
STEP_OVERHEAD_OPS = 150
# Memory a worker takes above its idle size besides the tensors counted: kernels' scratch, the
# allocator's slack and the data's float64 originals while they are drawn (measured: 30-80 MiB on
# the shipped suites' small runs, see the module docstring).
RUN_OVERHEAD_BYTES = 64 * 2**20
# Real steps took 1.2-2.0x the traced work (three set-ups, from an MLP at 1.9 ms to PLE at 3 s per
# step): the middle of that range, so the estimate errs neither way by much more than 1.4x.
CALIBRATION = 1.5


@dataclass(frozen=True)
class DataShape:
    """What a suite's data are, without building them: one example's input shape and how many
    training and validation examples the trainer moves to the device."""

    input_shape: tuple[int, ...]
    train: int
    val: int

    def bytes(self) -> int:
        per_example = math.prod(self.input_shape) + 8  # the inputs, and a few targets per example
        return (self.train + self.val) * per_example * FLOAT_BYTES


def data_shapes(config: RunConfig) -> DataShape:
    """The data of ``config.suite`` with its parameters (see mtl_core.suites.digits / synthetic)."""
    params = config.suite_params
    if config.suite == "multidigits":
        return DataShape((1, 8, 16 - int(params["overlap"])), int(params["train_pairs"]), 2000)
    if config.suite == "digit_attributes":
        # 1,438 training digits plus their shifted copies (~2,700 more: measured 4,137); 359 held out.
        return DataShape((1, 8, 8), 4137, 359)
    if config.suite == "synthetic":
        return DataShape((100,), int(params["train_size"]), 2000)
    if config.suite in ("multimnist", "multifashion"):  # resized to 28 x 28 (mtl_core.suites.mnist)
        return DataShape((1, 28, 28), int(params["train_pairs"]), 2000)
    if config.suite == "penguins":  # 333 complete rows, 80 / 20; island one-hot (mtl_core.suites.tables)
        return DataShape((5,), 266, 67)
    if config.suite == "wine":
        return DataShape((11,), 142, 36)
    # A suite this table does not know yet: build it (slower, but right).
    from mtl_core.suites import build_suite  # imports torch and the data: only for unknown suites

    data = build_suite(config.suite, config.suite_params)
    return DataShape(tuple(data.x_train.shape[1:]), int(data.x_train.shape[0]), int(data.x_val.shape[0]))


@dataclass(frozen=True)
class Trace:
    """One traced piece of work on the meta device."""

    flops: float = 0.0
    written: float = 0.0  # bytes the operations wrote
    ops: int = 0
    peak: int = 0  # most bytes alive at once, above what was alive when the trace began

    def __add__(self, other: Trace) -> Trace:
        return Trace(self.flops + other.flops, self.written + other.written, self.ops + other.ops,
                     max(self.peak, other.peak))

    def __mul__(self, times: float) -> Trace:
        return Trace(self.flops * times, self.written * times, round(self.ops * times), self.peak)


@dataclass(frozen=True)
class MachineSpeed:
    """How fast this machine does the three kinds of work a step is made of, on the worker's threads."""

    flops_per_s: float  # a float32 matmul
    bytes_per_s: float  # an elementwise operation on tensors far larger than the caches
    op_s: float  # one small operation, dispatch and all

    def seconds(self, trace: Trace) -> float:
        return trace.flops / self.flops_per_s + trace.written / self.bytes_per_s + trace.ops * self.op_s


@dataclass(frozen=True)
class Estimate:
    """A run's estimated peak memory (of its own tensors, above an idle worker's) and seconds per
    step (averaged over its probe, evaluation and snapshot cadences), with the parts that make them."""

    memory_bytes: int
    seconds_per_step: float
    parameters: int
    shared_parameters: int
    fixed_bytes: int  # parameters, gradients, optimizer state, data: whatever the batch size
    batch_bytes: int  # the step's activations: grow with the batch size
    jacobian_bytes: int  # the task Jacobian and the method's work on it (0 when the step takes none)

    def seconds(self, steps: int) -> float:
        return self.seconds_per_step * steps


def estimate(config: RunConfig) -> Estimate:
    """The estimate for ``config``; runs that differ only in seed, steps, learning rate or the
    method (beyond whether it takes the Jacobian) share one, cached: a grid costs one or two."""
    takes_jacobian = METHODS[config.method].kind == "aggregation"
    key = config.model_dump_json(exclude={"seed", "steps", "lr", "method", "method_params"}) + str(takes_jacobian)
    with _lock:
        cached = _cache.get(key)
    if cached is None:
        cached = _elsewhere[0](config) if _elsewhere else estimate_here(config)
        with _lock:
            _remember(_cache, key, cached)
    return cached


def estimate_here(config: RunConfig) -> Estimate:
    """The estimate, made in this process (its traces cached)."""
    return _combine(config, _traced(config), METHODS[config.method].kind == "aggregation")


def estimate_with(make: Callable[[RunConfig], Estimate]) -> None:
    """Make this process's estimates with ``make`` from now on: a served app hands them to a child
    process (:func:`mtl_core.runs.estimator.estimate_elsewhere`)."""
    with _lock:
        _elsewhere[:] = [make]


@dataclass(frozen=True)
class _Traced:
    """What the meta model and its traced step tell: all that needs torch, and the same whatever
    the run's cadences, optimizer and method."""

    parameters: int
    shared: int
    tensors: int  # parameter tensors: the optimizer's and the Jacobian's operations go by them
    forward: Trace
    backward: Trace
    has_snapshot: bool


_CACHE_SIZE = 256
_cache: dict[str, Estimate] = {}
_traces: dict[str, _Traced] = {}
_lock = threading.Lock()
_elsewhere: list[Callable[[RunConfig], Estimate]] = []  # see estimate_with
# One trace at a time: thirty people pressing Train on one set-up trace it once, not thirty times.
_tracing = threading.Lock()


def _remember(cache: dict, key: str, value: object) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _traced(config: RunConfig) -> _Traced:
    """The traced step of ``config``'s model and batch, cached by what shapes it: a run that
    changes only how often it evaluates, probes or snapshots costs arithmetic, not a trace."""
    shape = data_shapes(config)
    batch = min(config.batch_size, shape.train)
    key = config.model_dump_json(include={"suite", "suite_params", "tasks", "arch", "arch_params"}) + f"/{batch}"
    with _tracing:
        with _lock:
            cached = _traces.get(key)
        if cached is None:
            cached = _trace(config, shape, batch)
            with _lock:
                _remember(_traces, key, cached)
    return cached


def _trace(config: RunConfig, shape: DataShape, batch: int) -> _Traced:
    model = meta_model(config, shape)
    step = trace_step(model, config, shape, batch)
    return _Traced(parameters=sum(p.numel() for p in model.parameters()),
                   shared=sum(p.numel() for p in model.shared_parameters()),
                   tensors=len(list(model.parameters())), forward=step["forward"],
                   backward=step["backward"], has_snapshot=_has_snapshot(model))


def _estimate(config: RunConfig, takes_jacobian: bool) -> Estimate:
    """The estimate, traced afresh (no cache)."""
    shape = data_shapes(config)
    return _combine(config, _trace(config, shape, min(config.batch_size, shape.train)), takes_jacobian)


def _combine(config: RunConfig, traced: _Traced, takes_jacobian: bool) -> Estimate:
    """The run's memory and seconds per step from its traced step, by the trainer's rules."""
    shape = data_shapes(config)
    tasks = len(config.tasks)
    batch = min(config.batch_size, shape.train)
    parameters, shared = traced.parameters, traced.shared
    forward, backward = traced.forward, traced.backward
    jacobian_every = 1.0 if takes_jacobian else (1.0 / config.probe_every if config.probe_every and shared else 0.0)
    # A gradient method takes T reverse passes each step; a loss weighting one, plus T on probe steps.
    reverse_passes = tasks * jacobian_every + (0.0 if takes_jacobian else 1.0)
    work = forward + backward * reverse_passes + _bookkeeping(parameters, traced.tensors, tasks, shared,
                                                              jacobian_every)
    # Evaluation and snapshots are forward passes without autograd: the traced forward, scaled to
    # their number of examples (FLOPs and bytes grow with it; operations with the chunks).
    chunks = math.ceil(shape.val / EVAL_CHUNK)
    work = work + _scaled(forward, shape.val / batch, chunks) * (1.0 / config.eval_every)
    if config.snapshot_every and traced.has_snapshot:
        work = work + _scaled(forward, min(SNAPSHOT_INPUTS, shape.val) / batch, 1) * (1.0 / config.snapshot_every)

    optimizer_state = ADAM_MOMENTS if config.optimizer == "adam" else 0
    fixed = parameters * FLOAT_BYTES * (2 + optimizer_state) + shape.bytes()
    jacobian = 3 * tasks * shared * FLOAT_BYTES if jacobian_every else 0
    batch_bytes = max(forward.peak, backward.peak)
    seconds = CALIBRATION * machine_speed().seconds(work)
    return Estimate(memory_bytes=RUN_OVERHEAD_BYTES + fixed + batch_bytes + jacobian, seconds_per_step=seconds,
                    parameters=parameters, shared_parameters=shared, fixed_bytes=fixed,
                    batch_bytes=batch_bytes, jacobian_bytes=jacobian)


def meta_model(config: RunConfig, shape: DataShape) -> torch.nn.Module:
    """The run's architecture on the meta device, built from a stand-in of the suite's data."""
    # torch is imported here and in the functions below, not at the top: the job manager imports
    # this module and holds no torch until it checks a run.
    import torch

    from mtl_core.suites.backbones import cnn_encoder, mlp_encoder  # torch modules: see _estimate
    from mtl_core.suites.base import SuiteData  # imports torch: see _estimate

    info = SUITES[config.suite]
    input_shape = shape.input_shape
    with torch.device("meta"):
        stand_in = SuiteData(
            info=info, x_train=torch.empty(0, *input_shape), y_train={},
            x_val=torch.empty(shape.val, *input_shape), y_val={},
            make_encoder=(lambda: cnn_encoder(input_shape)) if len(input_shape) == 3
            else (lambda: mlp_encoder(input_shape[0])))
        entry = ARCHITECTURES[config.arch]
        return entry.load()(stand_in, config.tasks, **config.arch_params)


def trace_step(model: torch.nn.Module, config: RunConfig, shape: DataShape, batch: int) -> dict[str, Trace]:
    """The forward pass with the task losses, then one reverse pass (of the first task's loss, on
    every parameter it reaches), traced at ``batch``. The forward's peak is what autograd saved;
    the reverse pass's, its own temporaries and gradients on top of that."""
    import torch  # see meta_model

    model.train()
    x = torch.empty(batch, *shape.input_shape, device="meta")
    counter = _Counter()
    with counter:
        outputs = model(x)
        losses = [_stand_in_loss(outputs[task]) for task in config.tasks]
    forward = counter.trace()
    counter.restart()
    with counter:
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(losses[0], params, retain_graph=False, allow_unused=True)
        del grads
    backward = counter.trace()
    # The reverse pass's own peak sits on top of what the forward left alive.
    return {"forward": forward, "backward": Trace(backward.flops, backward.written, backward.ops,
                                                   forward.peak + backward.peak)}


def _bookkeeping(parameters: int, tensors: int, tasks: int, shared: int, jacobian_every: float) -> Trace:
    """What the trainer does around the passes: Adam's update (its foreach kernels read and write
    the parameters, gradients and both moments a few times over), the Jacobian's rows and their
    stack, the method's Gram matrix, and the step's own Python (the record, the losses' ``tolist``:
    counted as ``STEP_OVERHEAD_OPS`` small operations)."""
    size = parameters * FLOAT_BYTES
    optimizer = Trace(flops=0.0, written=ADAM_PASSES * size, ops=ADAM_OPS_PER_TENSOR * tensors)
    jacobian = Trace(flops=2.0 * tasks * tasks * shared, written=3.0 * tasks * shared * FLOAT_BYTES,
                     ops=4 * tensors * tasks) * jacobian_every
    return optimizer + jacobian + Trace(ops=STEP_OVERHEAD_OPS)


def _scaled(forward: Trace, examples: float, passes: int) -> Trace:
    """A forward pass over ``examples`` times the traced batch, in ``passes`` chunks."""
    return Trace(forward.flops * examples, forward.written * examples, forward.ops * passes, 0)


def _stand_in_loss(prediction: torch.Tensor) -> torch.Tensor:
    # The suite's loss reads targets the meta device does not have; its cost is that of one pass
    # over the prediction, as this one's.
    return prediction.float().square().mean()


def _has_snapshot(model: torch.nn.Module) -> bool:
    return type(model).sharing_snapshot is not _base_snapshot()


@functools.cache
def _base_snapshot() -> Any:
    from mtl_core.architectures.base import MTLModel  # imports torch: see _estimate

    return MTLModel.sharing_snapshot


class _Counter:
    """A dispatch mode that counts each operation, its FLOPs, the bytes it writes and the bytes
    alive (a view shares its base's storage and adds none)."""

    def __new__(cls) -> Any:
        return _counter_class()()


@functools.cache
def _counter_class() -> type:
    from torch.utils._python_dispatch import TorchDispatchMode  # see meta_model
    from torch.utils.flop_counter import flop_registry  # see meta_model

    class Counter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.restart()

        def restart(self) -> None:
            self.flops, self.written, self.ops = 0.0, 0.0, 0
            self.alive = self.peak = 0

        def trace(self) -> Trace:
            return Trace(self.flops, self.written, self.ops, self.peak)

        def _free(self, size: int) -> None:
            self.alive -= size

        def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Mapping | None = None) -> Any:
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            self.ops += 1
            flops = flop_registry.get(func._overloadpacket)
            if flops is not None:
                self.flops += flops(*args, **kwargs, out_val=out)
            if func.is_view:
                return out
            for tensor in out if isinstance(out, tuple | list) else (out,):
                if hasattr(tensor, "untyped_storage"):
                    size = tensor.numel() * tensor.element_size()
                    self.written += size
                    self.alive += size
                    self.peak = max(self.peak, self.alive)
                    weakref.finalize(tensor, self._free, size)
            return out

    return Counter


@functools.cache
def machine_speed() -> MachineSpeed:
    """Measured once per process (~50 ms), on the thread count a worker trains with."""
    import torch  # see meta_model

    # The worker's thread count; the engine imports torch, hence here.
    from mtl_core.engine.devices import default_threads

    before, threads = torch.get_num_threads(), default_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(384, 384)
        flops_per_s = _best_rate(lambda: a @ a, 2 * 384**3, repeats=5, threads=threads)
        big = torch.empty(4 * 2**20)  # 16 MiB: larger than the caches
        bytes_per_s = _best_rate(lambda: torch.add(big, 1.0), 2 * big.numel() * FLOAT_BYTES, repeats=5,
                                 threads=threads)
        small = torch.ones(8)
        # One small operation runs on one thread whatever the count.
        op_s = 1.0 / _best_rate(lambda: [small + 1 for _ in range(200)], 200, repeats=3, threads=1)
    finally:
        torch.set_num_threads(before)
    return MachineSpeed(flops_per_s=flops_per_s, bytes_per_s=bytes_per_s, op_s=op_s)


def _best_rate(work: Any, amount: float, *, repeats: int, threads: int) -> float:
    """``amount`` per second of the best of ``repeats`` calls, timed by the process's CPU time over
    its threads: the wall clock would count the time other processes held the cores (a server's
    classroom, a test suite next door), and the estimate would swing with the load."""
    work()  # the first call allocates
    best = math.inf
    for _ in range(repeats):
        begin = time.process_time()
        work()
        best = min(best, (time.process_time() - begin) / threads)
    return amount / max(best, 1e-9)


_warming: list[threading.Thread] = []


def warm_up(*, background: bool = True) -> None:
    """Pay the first estimate's one-off costs now (torch's import, the meta kernels' first use --
    torch loads its compiler stack on the first meta matmul, ~2 s -- and the machine's speed), so the
    first person to submit is answered at once. In a daemon thread by default, once per process."""
    if _warming:
        return

    def work() -> None:
        estimate(RunConfig(steps=1))

    thread = threading.Thread(target=work, name="mtl-budget-warm-up", daemon=True)
    _warming.append(thread)
    if background:
        thread.start()
    else:
        work()
