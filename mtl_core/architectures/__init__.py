"""Sharing architectures: how the tasks share a network (no torch import here).

Each entry's factory is called as ``factory(suite_data, tasks, **arch_params)`` and returns a
:class:`mtl_core.architectures.base.MTLModel`. Each architecture lives in its own module with
its sharing snapshot; ``diagram`` describes their structure for drawing (torch-free) and
``profile`` measures their cost. Architectures may import ``mtl_core.registry`` and
``mtl_core.suites`` (the data they are built for, and the backbones the suites define); never the
engine, methods, runs, figures, studies, lab or streamlit.
"""

from __future__ import annotations

from mtl_core.registry import ArchInfo, Knob, Paper, Registry

ARCHITECTURES: Registry[ArchInfo] = Registry("architecture")

ARCHITECTURES.register(
    ArchInfo(
        key="hps",
        name="Hard parameter sharing",
        category="hard sharing",
        summary="One shared trunk feeds a small head per task: the classic MTL network.",
        factory="mtl_core.architectures.hps:HardSharing",
        paper=Paper(authors="Caruana", title="Multitask Learning", venue="Machine Learning", year=1997),
        extra={
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "arch": "hps", "steps": 400},
                       "why": "The classic: one trunk for both digits. Compare its accuracies "
                              "with the single-task baselines."},
        },
    )
)

ARCHITECTURES.register(
    ArchInfo(
        key="stl",
        name="Single-task baselines",
        category="baseline",
        summary="An independent trunk and head per task: nothing is shared; the yardstick for MTL.",
        factory="mtl_core.architectures.stl:SingleTask",
        extra={
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "arch": "stl", "steps": 400},
                       "why": "The yardstick: an independent network per digit, no transfer and "
                              "no interference."},
        },
    )
)

_EXPERT_UNITS = Knob(name="expert_units", label="Units per expert", kind="int", default=16, low=2, high=256,
                     help="Output size of each expert (MMoE's synthetic experiments: 16); the heads read this many features.")

ARCHITECTURES.register(
    ArchInfo(
        key="cross_stitch",
        name="Cross-stitch networks",
        category="soft sharing",
        summary="A column per task; after every layer a learned T x T matrix mixes the columns' features.",
        factory="mtl_core.architectures.cross_stitch:CrossStitch",
        extra={
            "simplified": "One mixing weight per task pair and layer (the paper also tries one "
                          "per channel), no separate learning rate for the mixing, and columns "
                          "trained from scratch rather than from a pretrained network.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "arch": "cross_stitch", "steps": 400},
                       "why": "Watch the learnt mixing matrices: how much each digit's column "
                              "reads from the other's."},
        },
        knobs=(
            Knob(name="self_weight", label="Initial self weight (alpha_S)", default=0.9, low=0.0, high=1.0,
                 help="How much of its own column each task reads at the start; the rest is split evenly "
                      "among the other tasks (the paper's best start: 0.9)."),
        ),
        paper=Paper(authors="Misra, Shrivastava, Gupta & Hebert", title="Cross-stitch Networks for Multi-task Learning",
                    venue="CVPR", year=2016, arxiv="1604.03539"),
    )
)

ARCHITECTURES.register(
    ArchInfo(
        key="soft_l2",
        name="Soft sharing (L2 penalty)",
        category="soft sharing",
        summary="A column per task, each trained on its own task, pulled together by an L2 penalty on their differences.",
        factory="mtl_core.architectures.soft_sharing:SoftSharing",
        extra={
            "simplified": "Every pair of task columns is pulled together and all are trained at "
                          "once; Duong et al. pull one target model toward one source model.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "arch": "soft_l2", "steps": 400},
                       "why": "Two columns pulled together: raise the penalty to move from "
                              "independent networks to hard sharing."},
        },
        knobs=(
            Knob(name="strength", label="Penalty strength (lambda)", default=0.01, low=0.0, high=10.0,
                 help="Weight of the squared distance between every two task columns: 0 is independent "
                      "networks, large values approach hard sharing (the paper tunes it on held-out data)."),
        ),
        paper=Paper(authors="Duong, Cohn, Bird & Cook",
                    title="Low Resource Dependency Parsing: Cross-lingual Parameter Sharing in a Neural Network Parser",
                    venue="ACL", year=2015),
    )
)

ARCHITECTURES.register(
    ArchInfo(
        key="mmoe",
        name="Multi-gate Mixture-of-Experts (MMoE)",
        category="mixture of experts",
        summary="Experts shared by all tasks; each task mixes them with its own softmax gate on the input.",
        factory="mtl_core.architectures.moe:MMoE",
        extra={
            "simplified": "Experts are single small layers (16 units on vectors, a thin CNN on "
                          "images), as in the paper's synthetic experiments.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "arch": "mmoe", "steps": 400},
                       "why": "Each digit's gate mixes the shared experts its own way: watch "
                              "whether the gates specialise."},
        },
        knobs=(
            Knob(name="experts", label="Experts", kind="int", default=8, low=1, high=32,
                 help="Number of experts every task's gate chooses among (the paper: 8)."),
            _EXPERT_UNITS,
        ),
        paper=Paper(authors="Ma, Zhao, Yi, Chen, Hong & Chi",
                    title="Modeling Task Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts",
                    venue="KDD", year=2018),
    )
)

_PLE_PAPER = Paper(authors="Tang, Liu, Zhao & Gong",
                   title="Progressive Layered Extraction (PLE): A Novel Multi-Task Learning (MTL) Model for "
                         "Personalized Recommendations", venue="RecSys", year=2020)
_SHARED_EXPERTS = Knob(name="shared_experts", label="Shared experts", kind="int", default=1, low=1, high=16,
                       help="Experts every task's gate may choose.")
_TASK_EXPERTS = Knob(name="task_experts", label="Experts per task", kind="int", default=1, low=1, high=16,
                     help="Experts of each task's own, that only its gate may choose.")

ARCHITECTURES.register(
    ArchInfo(
        key="cgc",
        name="Customized Gate Control (CGC)",
        category="mixture of experts",
        summary="Shared experts plus experts of each task's own; a task's gate mixes the shared ones and its own.",
        factory="mtl_core.architectures.moe:CGC",
        extra={
            "simplified": "One shared and one task-specific expert per task by default, each a "
                          "single layer.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "arch": "cgc", "steps": 400},
                       "why": "Shared and task-specific experts: see whether each digit's gate "
                              "prefers its own expert."},
        },
        knobs=(_SHARED_EXPERTS, _TASK_EXPERTS, _EXPERT_UNITS),
        paper=_PLE_PAPER,
    )
)

ARCHITECTURES.register(
    ArchInfo(
        key="ple",
        name="Progressive Layered Extraction (PLE)",
        category="mixture of experts",
        summary="CGC levels stacked; below the top, a shared gate also mixes all experts into the next level's shared input.",
        factory="mtl_core.architectures.moe:PLE",
        extra={
            "simplified": "One shared and one task-specific expert per task per level by default,"
                          " each a single layer; levels are stacked gated layers.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "arch": "ple", "steps": 400},
                       "why": "Stacked levels of shared and task experts: the gates at each level"
                              " show where the digits part ways."},
        },
        knobs=(
            Knob(name="levels", label="Extraction levels", kind="int", default=2, low=1, high=4,
                 help="How many CGC levels are stacked (1 is CGC)."),
            _SHARED_EXPERTS, _TASK_EXPERTS, _EXPERT_UNITS,
        ),
        paper=_PLE_PAPER,
    )
)

ARCHITECTURES.register(
    ArchInfo(
        key="mtan",
        name="Multi-Task Attention Network (MTAN)",
        category="attention",
        summary="One shared trunk; each task reads it through its own soft-attention masks, layer by layer.",
        factory="mtl_core.architectures.mtan:MTAN",
        extra={
            "simplified": "Each stage of our small trunk is one layer, so a task's attention mask"
                          " reads and weights the same features; no batch norm.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "arch": "mtan", "steps": 400},
                       "why": "A shared trunk with an attention mask per task: see how much of "
                              "the features each digit keeps."},
        },
        paper=Paper(authors="Liu, Johns & Davison", title="End-to-End Multi-Task Learning with Attention",
                    venue="CVPR", year=2019, arxiv="1803.10704"),
    )
)

ARCHITECTURES.register(
    ArchInfo(
        key="adashare",
        name="AdaShare (learned branching)",
        category="learned branching",
        summary="Shared residual blocks; each task learns which blocks to execute or skip, so the network learns its own branching.",
        factory="mtl_core.architectures.adashare:AdaShare",
        extra={
            "simplified": "No warm-up, curriculum, alternating updates, retraining of the chosen "
                          "architecture or per-task batch norm; evaluation uses the execute "
                          "probabilities.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "arch": "adashare", "steps": 400},
                       "why": "Each digit learns which layers to run: the snapshots show its "
                              "execute probability per layer."},
        },
        knobs=(
            Knob(name="blocks", label="Skippable blocks", kind="int", default=4, low=1, high=8,
                 help="Residual blocks each task may execute or skip."),
            Knob(name="temperature", label="Gumbel-softmax temperature", default=5.0, low=0.1, high=20.0, log=True,
                 help="Starting temperature of the relaxed execute/skip samples: higher is smoother (official code: 5)."),
            Knob(name="temperature_decay", label="Temperature decay per 100 steps", default=0.965, low=0.5, high=1.0,
                 help="The temperature is multiplied by this every 100 steps (official code: 0.965)."),
            Knob(name="sparsity", label="Sparsity penalty", default=0.05, low=0.0, high=1.0,
                 help="Weight of the penalty that favours skipping blocks, for a compact model (official code: 0.05)."),
            Knob(name="sharing", label="Sharing penalty", default=0.05, low=0.0, high=1.0,
                 help="Weight of the penalty on tasks' different choices, heavier on lower blocks (official code: 0.05)."),
            Knob(name="policy_lr_scale", label="Policy learning-rate multiplier", default=10.0, low=1.0, high=1000.0,
                 log=True, help="How much faster the execute/skip logits learn than the network (official code: 10, "
                                "policy lr 0.01 vs 0.001); exact under Adam."),
        ),
        paper=Paper(authors="Sun, Panda, Feris & Saenko",
                    title="AdaShare: Learning What To Share For Efficient Deep Multi-Task Learning",
                    venue="NeurIPS", year=2020, arxiv="1911.12423"),
    )
)
