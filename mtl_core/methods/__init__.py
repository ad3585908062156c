"""The methods that balance tasks: loss weighting and gradient aggregation, one module per method.

Each method module holds its class and, beside it, its registry entry as the constant ``ENTRY``
(Aligned-MTL's module serves a second key, its UB variant, as ``UB_ENTRY``); :mod:`.base` holds the
contracts they implement, and :mod:`.min_norm` and :mod:`.dual_cone` the small solvers two of them
share. Weighting methods (``kind="weighting"``) need only the task losses; their factory is called
as ``factory(n_tasks=T, **method_params)`` and returns a :class:`~mtl_core.methods.base.Weighting`.
Aggregation methods (``kind="aggregation"``) need the task Jacobian on the shared parameters; their
factory returns a :class:`~mtl_core.methods.base.Aggregator`. A module here imports only
:mod:`mtl_core.registry` and modules of this package -- never the engine, runs, figures, studies,
lab or streamlit -- and takes torch and numpy lazily from :mod:`.base`, so that this package, and
with it every list of methods, imports without torch. A person sees the loss weightings first,
then the gradient methods, each family in the order its papers appeared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods import (
    aligned_mtl,
    cagrad,
    conflict_free,
    dwa,
    equal,
    famo,
    gls,
    graddrop,
    gradnorm,
    gradvac,
    imtl_g,
    imtl_l,
    mgda,
    nash_mtl,
    pcgrad,
    rlw,
    static,
    uncertainty,
    upgrad,
)
from mtl_core.registry import MethodInfo, Registry

if TYPE_CHECKING:
    from mtl_core.methods.base import Aggregator, Weighting

METHODS: Registry[MethodInfo] = Registry("method")

# Sorted by _display_order below; entries that tie (same kind, same year) keep this order.
_ENTRIES: tuple[MethodInfo, ...] = (
    equal.ENTRY, static.ENTRY, uncertainty.ENTRY, gradnorm.ENTRY, dwa.ENTRY, rlw.ENTRY, gls.ENTRY,
    imtl_l.ENTRY, famo.ENTRY,
    mgda.ENTRY, imtl_g.ENTRY, cagrad.ENTRY, nash_mtl.ENTRY,
    pcgrad.ENTRY, graddrop.ENTRY, gradvac.ENTRY, aligned_mtl.ENTRY, aligned_mtl.UB_ENTRY, upgrad.ENTRY,
    conflict_free.ENTRY,
)


def _display_order(entry: MethodInfo) -> tuple[bool, int]:
    return entry.kind != "weighting", entry.paper.year if entry.paper else 0


for _entry in sorted(_ENTRIES, key=_display_order):
    METHODS.register(_entry)


def aggregators() -> dict[str, MethodInfo]:
    """The registered gradient-aggregation methods, by key."""
    return {entry.key: entry for entry in METHODS if entry.kind == "aggregation"}


def make_aggregator(key: str, n_tasks: int, **params: object) -> Aggregator:
    entry = METHODS[key]
    if entry.kind != "aggregation":
        raise ValueError(f"{entry.name} is a loss weighting, not a gradient-aggregation method")
    return entry.load()(n_tasks=n_tasks, **entry.validate_params(params))


def make_weighting(key: str, n_tasks: int, **params: object) -> Weighting:
    entry = METHODS[key]
    if entry.kind != "weighting":
        raise ValueError(f"{entry.name} is a gradient-aggregation method, not a loss weighting")
    return entry.load()(n_tasks=n_tasks, **entry.validate_params(params))
