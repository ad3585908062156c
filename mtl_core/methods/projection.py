"""Gradient methods that project, align or mask the task gradients before combining them
(PCGrad, GradDrop, GradVac, Aligned-MTL, UPGrad, ConFIG)."""

from __future__ import annotations

from mtl_core.registry import MethodInfo

ENTRIES: tuple[MethodInfo, ...] = ()
