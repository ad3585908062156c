"""Task suites: which tasks exist, before any data is built (no torch import here).

The data and losses live in the modules the entries name (``digits``, ``synthetic``); building one
returns a :class:`mtl_core.suites.base.SuiteData`. A suite builds its own default
backbone (``backbones``: an MLP for vectors, a small CNN for images), which the sharing
architectures reuse. Suites may import ``mtl_core.registry`` only; everything above builds on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mtl_core.registry import Knob, Paper, Registry, SuiteInfo, TaskInfo

if TYPE_CHECKING:
    from mtl_core.suites.base import SuiteData

SUITES: Registry[SuiteInfo] = Registry("suite")

SUITES.register(
    SuiteInfo(
        key="multidigits",
        name="MultiDigits (left / right)",
        summary="Two handwritten 8x8 digits on one canvas, overlapping; read the left and the right one.",
        factory="mtl_core.suites.digits:build_multidigits",
        input_kind="image",
        # The smallest set-up that still trains: every test that builds every suite uses it.
        extra={"small": {"train_pairs": 500}},
        tasks=(
            TaskInfo(name="left", label="Left digit", kind="classification", n_outputs=10,
                     metric="accuracy", higher_is_better=True, help="Class (0-9) of the left digit."),
            TaskInfo(name="right", label="Right digit", kind="classification", n_outputs=10,
                     metric="accuracy", higher_is_better=True, help="Class (0-9) of the right digit."),
        ),
        default_tasks=("left", "right"),
        knobs=(
            Knob(name="overlap", label="Overlap (pixels)", kind="int", default=5, low=0, high=7,
                 help="How many of a digit's 8 columns the two digits share; more is harder."),
            Knob(name="train_pairs", label="Training pairs", kind="int", default=20000, low=500,
                 high=100000, help="Pairs drawn from the training digits; validation pairs come from held-out digits."),
        ),
        paper=Paper(authors="Sener & Koltun", title="Multi-Task Learning as Multi-Objective Optimization",
                    venue="NeurIPS", year=2018, arxiv="1810.04650"),
    )
)

SUITES.register(
    SuiteInfo(
        key="digit_attributes",
        name="Digit attributes",
        summary="One handwritten digit, several targets: class, parity, size, ink, centre, slant — losses on different scales.",
        factory="mtl_core.suites.digits:build_digit_attributes",
        input_kind="image",
        # The smallest set-up that still trains: every test that builds every suite uses it.
        extra={"small": {}},
        tasks=(
            TaskInfo(name="digit", label="Digit class", kind="classification", n_outputs=10,
                     metric="accuracy", higher_is_better=True, help="Which digit (0-9)."),
            TaskInfo(name="parity", label="Parity", kind="classification", n_outputs=2,
                     metric="accuracy", higher_is_better=True, help="Even or odd."),
            TaskInfo(name="large", label="5 or more", kind="classification", n_outputs=2,
                     metric="accuracy", higher_is_better=True, help="Is the digit 5 or more?"),
            TaskInfo(name="ink", label="Ink amount", kind="regression", n_outputs=1, metric="mae",
                     higher_is_better=False, unit="pixels",
                     help="Total ink, in fully-inked-pixel equivalents (sum of intensities / 16)."),
            TaskInfo(name="centre", label="Vertical centre of mass", kind="regression", n_outputs=1,
                     metric="mae", higher_is_better=False, unit="pixels",
                     help="Row of the ink's centre of mass, in pixels from the top."),
            TaskInfo(name="slant", label="Slant", kind="regression", n_outputs=1, metric="mae",
                     higher_is_better=False, unit="px / px",
                     help="How far the ink leans right per pixel upwards (a shear, from the ink's second moments)."),
        ),
        default_tasks=("digit", "parity", "ink", "centre"),
        knobs=(),
        paper=None,
    )
)

SUITES.register(
    SuiteInfo(
        key="synthetic",
        name="Synthetic (MMoE)",
        summary="Two regression tasks whose correlation you set: the MMoE paper's controlled benchmark.",
        factory="mtl_core.suites.synthetic:build_synthetic",
        input_kind="vector",
        # The smallest set-up that still trains: every test that builds every suite uses it.
        extra={"small": {"train_size": 500}},
        tasks=(
            TaskInfo(name="y1", label="Task 1", kind="regression", n_outputs=1, metric="mse",
                     higher_is_better=False, help="y1 = w1·x + Σ sin(α w1·x + β) + noise."),
            TaskInfo(name="y2", label="Task 2", kind="regression", n_outputs=1, metric="mse",
                     higher_is_better=False, help="Like y1 with w2, whose cosine with w1 is the correlation p."),
        ),
        default_tasks=("y1", "y2"),
        knobs=(
            Knob(name="correlation", label="Task correlation p", kind="float", default=0.5, low=-1.0,
                 high=1.0, help="Cosine between the two tasks' weight vectors (MMoE's p): 1 = same task."),
            Knob(name="train_size", label="Training examples", kind="int", default=100000, low=500,
                 high=200000, help="Examples drawn for training; 2,000 more are held out for validation."),
        ),
        paper=Paper(authors="Ma, Zhao, Yi, Chen, Hong & Chi",
                    title="Modeling Task Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts",
                    venue="KDD", year=2018, arxiv=None),
    )
)


def build_suite(key: str, params: Mapping[str, Any] | None = None) -> SuiteData:
    """Build a suite's data and task definitions (imports torch)."""
    entry = SUITES[key]
    return entry.load()(**entry.validate_params(params or {}))
