"""Sharing architectures: how the tasks share a network (no torch import here).

Each entry's factory is called as ``factory(suite_data, tasks, **arch_params)`` and returns a
:class:`mtl_core.architectures.base.MTLModel`.
"""

from __future__ import annotations

from mtl_core.registry import ArchInfo, Paper, Registry

ARCHITECTURES: Registry[ArchInfo] = Registry("architecture")

ARCHITECTURES.register(
    ArchInfo(
        key="hps",
        name="Hard parameter sharing",
        category="hard sharing",
        summary="One shared trunk feeds a small head per task: the classic MTL network.",
        factory="mtl_core.architectures.hps:HardSharing",
        paper=Paper(authors="Caruana", title="Multitask Learning", venue="Machine Learning", year=1997),
    )
)

ARCHITECTURES.register(
    ArchInfo(
        key="stl",
        name="Single-task baselines",
        category="baseline",
        summary="An independent trunk and head per task: nothing is shared; the yardstick for MTL.",
        factory="mtl_core.architectures.stl:SingleTask",
    )
)
