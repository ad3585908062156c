"""What every method is: the contracts the trainer, the lab and the tests call.

A gradient aggregation combines the task Jacobian into one update::

    agg = make_aggregator("pcgrad", n_tasks=3)  # keyword hyper-parameters, paper defaults
    out = agg(J)        # J: Tensor[T, P], row t = gradient of task t's loss
    out.update          # Tensor[P], the direction the shared parameters descend along
    out.weights         # Tensor[T] with update == weights @ J, or None where the method has none

Most aggregations read only the T x T Gram matrix ``J J^T``: they subclass
:class:`GramAggregator` and write the rule ``weights(gram, eps)``.

A loss weighting sees the task losses and returns a weight per task::

    weighting = make_weighting("uw", n_tasks=3)      # keyword hyper-parameters, paper defaults
    weighting.attach(hooks)                          # what the trainer lends (see TrainerHooks)
    w = weighting.weights(losses, step)              # Tensor[T]
    (w * losses).sum() + weighting.regularizer()     # what the trainer minimises
    weighting.after_step(step)                       # after the optimiser's step (FAMO looks again)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor, nn


class LazyModule:
    """A stand-in for a module that imports it on first attribute use and then caches each
    attribute on itself (a plain attribute lookup from then on)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # introspection (copy, pickle, inspect) must not import it
            raise AttributeError(attribute)
        module: ModuleType = importlib.import_module(self._name)
        value = getattr(module, attribute)
        setattr(self, attribute, value)
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


# Listing the methods (every page, and every RunConfig's validation) imports every method module
# to read its registry entry, and importing torch costs ~1.5 s (numpy ~0.1 s): so method modules
# take torch and numpy from here, as ``from mtl_core.methods.base import np, torch``, and the real
# modules load when a method first computes. Type hints name ``Tensor`` under TYPE_CHECKING only.
torch = LazyModule("torch")
np = LazyModule("numpy")

FLOAT32_EPS = 2.0**-23  # torch.finfo(torch.float32).eps, written out: a default argument needs no torch


@dataclass(frozen=True)
class Aggregation:
    update: Tensor
    weights: Tensor | None = None
    message: str | None = None  # e.g. "solver failed, fell back to the mean": shown on the run


class Aggregator:
    """Combine a Jacobian into one update. Stateful methods override ``reset``.

    ``space`` says which Jacobian the method reads: ``"parameters"`` (rows are task gradients on
    the shared parameters, the default) or ``"features"`` (rows are task gradients on the shared
    representation, the batch's encoder output, flattened: MGDA-UB's cheap upper bound). A
    features-space method must return ``weights``; the trainer then backpropagates ``weights @ losses``
    once instead of taking the parameter Jacobian.
    """

    space: str = "parameters"

    def __init__(self, n_tasks: int) -> None:
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be at least 1 (got {n_tasks})")
        self.n_tasks = n_tasks

    def __call__(self, jacobian: Tensor, /) -> Aggregation:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self) -> None:
        """Forget state carried between steps (a new run starts afresh)."""

    def two_task_rule(self) -> TwoTaskRule | None:
        """This method's closed form for two tasks, or None where it has none (it needs the
        Jacobian itself, or carries state between steps) or this instance is not for two tasks.
        The Gradient lab's toy compiles the rule and steps with it; tests hold it equal to
        ``__call__``, so the lab runs the trainer's method."""
        return self._two_task_rule() if self.n_tasks == 2 else None

    def _two_task_rule(self) -> TwoTaskRule | None:
        return None


class GramAggregator(Aggregator):
    """An aggregation whose update is ``weights @ J`` with weights read off the Gram matrix
    ``G = J J^T`` alone.

    ``__call__`` does, once for all of them: ``G`` on the Jacobian's device, then to the CPU in
    float64 (a T x T problem: a GPU would spend its time launching kernels, and float64 keeps the
    small solvers' decisions stable and the same on every device); the method's rule
    ``weights(gram, eps)`` ([T, T] float64 CPU -> [T] float64 CPU; ``eps`` is the machine epsilon
    of the Jacobian's dtype, the precision its gradients carry); the weights back to the
    Jacobian's device and dtype; ``update = weights @ J``.

    The rule may set ``self.message`` (None at the start of each call) to something the run
    should show, e.g. that its solver stopped early. A method that does not trust a Gram matrix
    with a non-finite entry says what to do instead in :meth:`fallback`.
    """

    message: str | None = None

    def __call__(self, jacobian: Tensor, /) -> Aggregation:
        gram = self.gram(jacobian)
        self.message = None
        fallback = self.fallback()
        if fallback is not None and not torch.isfinite(gram).all():
            weight, self.message = fallback
            weights = torch.full((self.n_tasks,), weight, dtype=torch.float64)
        else:
            weights = self.weights(gram, torch.finfo(jacobian.dtype).eps)
        weights = weights.to(jacobian.device, jacobian.dtype)
        return Aggregation(update=weights @ jacobian, weights=weights, message=self.message)

    @staticmethod
    def gram(jacobian: Tensor) -> Tensor:
        """``J J^T`` on the Jacobian's device, then on the CPU in float64."""
        return (jacobian @ jacobian.T).to("cpu", torch.float64)

    def weights(self, gram: Tensor, eps: float) -> Tensor:  # pragma: no cover - abstract
        """The method's rule: the task weights [T] (float64, CPU) from the Gram matrix [T, T]."""
        raise NotImplementedError

    def fallback(self) -> tuple[float, str] | None:
        """For a Gram matrix with a non-finite entry: every task's weight and the message saying
        so; None (the default) hands it to :meth:`weights` like any other."""
        return None


@dataclass(frozen=True)
class TwoTaskRule:
    """Task weights of two tasks from their Gram entries, as a plain scalar function
    ``function(g11, g12, g22, params) -> (w1, w2, ok)`` (``params``: a float64 array of the method's
    numbers). Written with ``math`` and builtins only, so numba can compile it. ``ok`` False means
    the closed form does not decide this problem (non-finite input, a degenerate optimum): the
    caller then asks ``__call__``."""

    function: Callable[[float, float, float, np.ndarray], tuple[float, float, bool]]
    params: tuple[float, ...] = ()

    def weights(self, g11: float, g12: float, g22: float) -> tuple[float, float, bool]:
        """The rule, run as plain Python."""
        return self.function(g11, g12, g22, np.asarray(self.params, dtype=np.float64))


@dataclass(frozen=True)
class TrainerHooks:
    """What the trainer lends a weighting that needs more than this step's losses.

    ``last_shared_grad_norms(losses)``: ||grad of losses[t] on the last shared layer|| per task,
    Tensor[T], detached (one reverse pass per task through the head and that layer only: what
    GradNorm's G_t(W) is built from); None where the architecture shares nothing.
    ``losses_now()``: this step's batch's task losses under the parameters as they are now, without
    a graph (after the optimiser's step: FAMO's "loss after the update").
    ``steps_per_epoch``: mini-batches in one pass over the training data (DWA's epochs).
    """

    last_shared_grad_norms: Callable[[Tensor], Tensor | None]
    losses_now: Callable[[], Tensor]
    steps_per_epoch: int


class Weighting:
    """``weights(losses, step) -> Tensor[T]``; the trainer minimises ``weights @ losses + regularizer()``.

    A method that learns (uncertainty weighting's log-variances) keeps its tensors as
    ``nn.Parameter`` attributes: ``parameters()`` yields them, in the order they were set, and the
    trainer adds them to the optimiser. A fixed tensor that should follow the device is set with
    ``register_buffer``. ``to(device)`` moves both, as ``nn.Module.to`` would: this class is not an
    ``nn.Module`` only because a class cannot subclass one without importing torch (see ``torch``
    above). The weights returned are what the Train page plots for each task.
    """

    def __init__(self, n_tasks: int) -> None:
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be at least 1 (got {n_tasks})")
        self.n_tasks = n_tasks
        self.hooks: TrainerHooks | None = None
        self._buffer_names: list[str] = []

    def parameters(self) -> Iterator[nn.Parameter]:
        """The learnt tensors (``nn.Parameter`` attributes), in the order they were first set."""
        return iter([value for value in vars(self).values() if isinstance(value, torch.nn.Parameter)])

    def register_buffer(self, name: str, tensor: Tensor) -> None:
        """Set attribute ``name`` to ``tensor``, a fixed tensor that ``to()`` moves too."""
        setattr(self, name, tensor)
        if name not in self._buffer_names:
            self._buffer_names.append(name)

    def to(self, device: Any = None, dtype: Any = None) -> Weighting:
        """Move the parameters (in place: an optimiser holding them keeps working) and buffers to
        ``device``, casting the floating-point ones to ``dtype`` where given (``to(torch.float64)``
        reads as a dtype)."""
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.data = _moved(parameter.data, device, dtype)
                if parameter.grad is not None:
                    parameter.grad = _moved(parameter.grad, device, dtype)
            for name in self._buffer_names:
                setattr(self, name, _moved(getattr(self, name), device, dtype))
        return self

    def double(self) -> Weighting:
        return self.to(dtype=torch.float64)

    def attach(self, hooks: TrainerHooks) -> None:
        self.hooks = hooks

    def weights(self, losses: Tensor, step: int) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def regularizer(self) -> Tensor | float:
        return 0.0

    def after_step(self, step: int) -> None:
        """Called once the optimiser has stepped (the parameters moved)."""

    def reset(self) -> None:
        """Forget state carried between steps (a new run starts afresh)."""

    @property
    def message(self) -> str | None:
        """Something the run should show (a fallback taken, say); None when all is well."""
        return None


def _moved(tensor: Tensor, device: Any, dtype: Any) -> Tensor:
    return tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else None)
