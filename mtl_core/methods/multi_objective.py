"""Gradient methods that solve a small problem over the task weights each step (MGDA, CAGrad,
IMTL-G, Nash-MTL): the update is a weighted sum of the task gradients."""

from __future__ import annotations

from mtl_core.registry import MethodInfo

ENTRIES: tuple[MethodInfo, ...] = ()
