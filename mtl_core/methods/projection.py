"""Gradient methods that project, align or mask the task gradients before combining them
(PCGrad, GradDrop, GradVac, Aligned-MTL, UPGrad, ConFIG)."""

from __future__ import annotations

from mtl_core.registry import FEATURES_COST, JACOBIAN_COST, Knob, MethodInfo, Paper

# Aligned-MTL and its UB variant share their paper and their one knob.
_ALIGNED_PAPER = Paper(authors="Senushkin, Patakin, Kuznetsov & Konushin",
                       title="Independent Component Alignment for Multi-Task Learning", venue="CVPR", year=2023,
                       arxiv="2305.19000")
_ALIGNED_SCALE = Knob(name="scale_mode", label="Scale", kind="choice", default="min", choices=("min", "median", "rmse"),
                      help="The common singular value of the aligned gradients: the smallest (the paper's), the median "
                           "or the root mean square of the original ones.")

ENTRIES: tuple[MethodInfo, ...] = (
    MethodInfo(
        key="pcgrad",
        name="PCGrad",
        kind="aggregation",
        category="gradient surgery",
        summary="Where two task gradients conflict, remove from each the part that opposes the other; add up what is left.",
        formula=(r"g_i^{\mathrm{PC}} \leftarrow g_i^{\mathrm{PC}} - \frac{\min(g_i^{\mathrm{PC}} \cdot g_j,\ 0)}"
                 r"{\lVert g_j \rVert^2}\, g_j \quad (j \neq i \text{ in random order}), \qquad "
                 r"d = \sum_{i=1}^{T} g_i^{\mathrm{PC}}"),
        cost=JACOBIAN_COST,
        factory="mtl_core.aggregation.pcgrad:PCGrad",
        paper=Paper(authors="Yu, Kumar, Gupta, Levine, Hausman & Finn",
                    title="Gradient Surgery for Multi-Task Learning", venue="NeurIPS", year=2020,
                    arxiv="2001.06782"),
        extra={
            "known_for": "The best-known gradient surgery: drop the part of each task's gradient "
                         "that conflicts with another's; simple, and effective in multi-task "
                         "reinforcement learning (Meta-World).",
            "struggles_with": "It acts only on conflicting directions, not on magnitude "
                              "differences, its random task order makes steps noisy, and careful "
                              "comparisons found small gains over tuned equal weighting.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "pcgrad", "steps": 300},
                       "why": "The left and right digits share one trunk and their gradients "
                              "often conflict: watch the cosines and how PCGrad combines them."},
        },
    ),
    MethodInfo(
        key="graddrop",
        name="GradDrop",
        kind="aggregation",
        category="gradient surgery",
        summary="At every coordinate, keep only the positive or only the negative task gradients, chosen at random in proportion to their mass.",
        formula=(r"\mathcal{P} = \tfrac{1}{2}\Big(1 + \frac{\sum_t g_t}{\sum_t \lvert g_t \rvert}\Big),\quad "
                 r"M_t = \mathbb{I}[\mathcal{P} > U]\,\mathbb{I}[g_t > 0] + \mathbb{I}[\mathcal{P} < U]\,"
                 r"\mathbb{I}[g_t < 0],\quad U \sim \mathcal{U}(0, 1),\qquad "
                 r"d = \sum_{t=1}^{T} \big(\ell + (1 - \ell) M_t\big) \odot g_t"),
        cost=JACOBIAN_COST,
        factory="mtl_core.aggregation.graddrop:GradDrop",
        knobs=(
            Knob(name="leak", label="Leak ℓ", default=0.0, low=0.0, high=1.0,
                 help="Share of every task's gradient that passes whatever the sign vote: 0 is pure sign dropout (the paper's default), 1 the plain sum."),
        ),
        paper=Paper(authors="Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov",
                    title="Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout",
                    venue="NeurIPS", year=2020, arxiv="2010.06808"),
        extra={
            "simplified": "The paper takes the sign vote on the gradients at a layer's "
                          "activations; here it is taken on every shared parameter's gradient, "
                          "with one leak for all tasks.",
            "known_for": "Sign dropout: at each coordinate of a layer's activations (here: of the"
                         " shared parameters) it keeps only the gradients of the sign a random "
                         "vote picks, weighted by how consistent the signs are; its paper reports "
                         "it beating the multi-loss methods of the time and combining with other "
                         "balancing methods.",
            "struggles_with": "Its randomness adds noise, it works element by element and ignores"
                              " magnitude imbalance, and later benchmark tables (e.g. Nash-MTL's) "
                              "show modest gains over equal weighting.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "graddrop", "steps": 300},
                       "why": "The left and right digits share one trunk and their gradients "
                              "often conflict: watch the cosines and how GradDrop combines them."},
        },
    ),
    MethodInfo(
        key="gradvac",
        name="Gradient Vaccine",
        kind="aggregation",
        category="gradient surgery",
        summary="Keep a running average of how aligned each pair of tasks usually is, and pull a pair's gradients back up to it when they align less.",
        formula=(r"\text{if } \phi_{ij} < \hat\phi_{ij}:\ g_i \leftarrow g_i + \frac{\lVert g_i \rVert \big("
                 r"\hat\phi_{ij}\sqrt{1 - \phi_{ij}^2} - \phi_{ij}\sqrt{1 - \hat\phi_{ij}^2}\big)}"
                 r"{\lVert g_j \rVert \sqrt{1 - \hat\phi_{ij}^2}}\, g_j, \qquad "
                 r"\hat\phi_{ij} \leftarrow (1 - \beta)\,\hat\phi_{ij} + \beta\,\phi_{ij}, \qquad "
                 r"d = \sum_{i=1}^{T} g_i"),
        cost=JACOBIAN_COST,
        factory="mtl_core.aggregation.gradvac:GradVac",
        knobs=(
            Knob(name="beta", label="EMA rate β", default=0.01, low=1e-4, high=1.0, log=True,
                 help="How fast the target cosine of each task pair follows the cosines observed (the paper's 1e-2: a memory of about 100 steps)."),
        ),
        paper=Paper(authors="Wang, Tsvetkov, Firat & Cao",
                    title="Gradient Vaccine: Investigating and Improving Multi-task Optimization in Massively Multilingual Models",
                    venue="ICLR", year=2021, arxiv="2010.05874"),
        extra={
            "simplified": "The paper keeps a target cosine per layer of a large translation "
                          "model; here one target per task pair covers all shared parameters (its"
                          " whole-model variant).",
            "known_for": "Pulling task gradients toward a target similarity learnt from their "
                         "history, rather than only repairing negative cosines; built for "
                         "massively multilingual translation.",
            "struggles_with": "It adds a hyper-parameter (the rate of the moving target) and "
                              "state per task pair; with a fixed target of 0 it would be PCGrad.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "gradvac", "steps": 300},
                       "why": "The left and right digits share one trunk and their gradients "
                              "often conflict: watch the cosines and how Gradient Vaccine "
                              "combines them."},
        },
    ),
    MethodInfo(
        key="aligned_mtl",
        name="Aligned-MTL",
        kind="aggregation",
        category="gradient alignment",
        summary="Replace the task gradients by the nearest set whose principal components are all equally strong (condition number 1), then add them up.",
        formula=(r"J J^\top = V \Lambda V^\top,\qquad B = \sqrt{\lambda_{\min}}\; V \Lambda^{-1/2} V^\top,"
                 r"\qquad d = \mathbf{1}^\top B J"),
        cost=JACOBIAN_COST,
        factory="mtl_core.aggregation.aligned_mtl:AlignedMTL",
        knobs=(_ALIGNED_SCALE,),
        paper=_ALIGNED_PAPER,
        extra={
            "known_for": "Making the tasks' gradient system well conditioned (all principal "
                         "components equally strong) so no task or direction dominates; unlike "
                         "most methods it provably converges to an optimum with task weights set "
                         "in advance.",
            "struggles_with": "It needs an eigendecomposition of the T x T Gram matrix every step"
                              " and scales the update to the weakest component, so a small, noisy"
                              " direction can set the step size.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "aligned_mtl", "steps": 300},
                       "why": "The left and right digits share one trunk and their gradients "
                              "often conflict: watch the cosines and how Aligned-MTL combines "
                              "them."},
        },
    ),
    MethodInfo(
        key="aligned_mtl_ub",
        name="Aligned-MTL-UB",
        kind="aggregation",
        category="gradient alignment",
        summary="Aligned-MTL's weights computed from the gradients on the shared representation, then one backward pass of the weighted losses.",
        formula=(r"Z Z^\top = V \Lambda V^\top \ (Z = \partial \mathcal{L} / \partial \text{features}),\qquad "
                 r"w = \sqrt{\lambda_{\min}}\; V \Lambda^{-1/2} V^\top \mathbf{1},\qquad "
                 r"\mathcal{L} = \sum_t w_t \mathcal{L}_t"),
        cost=FEATURES_COST,
        factory="mtl_core.aggregation.aligned_mtl:AlignedMTLUB",
        knobs=(_ALIGNED_SCALE,),
        paper=_ALIGNED_PAPER,
        extra={
            "known_for": "Most of Aligned-MTL's effect at a fraction of its cost: the alignment "
                         "is computed on the shared representation, as MGDA-UB does for MGDA.",
            "struggles_with": "It needs one shared representation that every task reads (not soft"
                              " sharing or mixtures of experts), and that representation's "
                              "gradients only approximate the parameters'.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "aligned_mtl_ub", "steps": 300},
                       "why": "The left and right digits share one trunk and their gradients "
                              "often conflict: watch the cosines and how Aligned-MTL-UB combines "
                              "them."},
        },
    ),
    MethodInfo(
        key="upgrad",
        name="UPGrad",
        kind="aggregation",
        category="conflict-free",
        summary="Project every task gradient onto the directions that conflict with no task, then average the projections.",
        formula=(r"d = \frac{1}{T}\sum_{i=1}^{T} \pi_J(g_i),\qquad "
                 r"\pi_J(g) = \operatorname*{arg\,min}_{x:\ J x \ge 0} \lVert x - g \rVert^2 = J^\top v,\quad "
                 r"v = \operatorname*{arg\,min}_{v \ge e_i} v^\top J J^\top v"),
        cost=JACOBIAN_COST,
        factory="mtl_core.aggregation.upgrad:UPGrad",
        paper=Paper(authors="Quinton & Rey", title="Jacobian Descent for Multi-Objective Optimization",
                    venue="arXiv", year=2024, arxiv="2406.16232"),
        extra={
            "known_for": "An update that conflicts with no task while each task keeps an "
                         "influence proportional to its gradient's norm (it equals the plain "
                         "average when no gradients conflict); the aggregator of the "
                         "Jacobian-descent library torchjd.",
            "struggles_with": "Each step solves T small quadratic programmes over the whole "
                              "Jacobian (speed is the limitation its authors name), and its paper "
                              "tests it on simple image classification, so independent multi-task"
                              " comparisons are still few.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "upgrad", "steps": 300},
                       "why": "The left and right digits share one trunk and their gradients "
                              "often conflict: watch the cosines and how UPGrad combines them."},
        },
    ),
    MethodInfo(
        key="config",
        name="ConFIG",
        kind="aggregation",
        category="conflict-free",
        summary="Step along the direction at the same angle to every task gradient, as far as their projections on it add up to.",
        formula=(r"U = \Big[\tfrac{g_i}{\lVert g_i \rVert}\Big]_{i=1}^{T},\qquad \hat d = \frac{U^{+}\mathbf{1}}"
                 r"{\lVert U^{+}\mathbf{1} \rVert},\qquad d = \Big(\sum_{i=1}^{T} g_i^\top \hat d\Big)\, \hat d"),
        cost=JACOBIAN_COST,
        factory="mtl_core.aggregation.conflict_free:ConFIG",
        paper=Paper(authors="Liu, Chu & Thuerey",
                    title="ConFIG: Towards Conflict-free Training of Physics Informed Neural Networks",
                    venue="ICLR", year=2025, arxiv="2408.11104"),
        extra={
            "known_for": "A conflict-free direction at the same angle to every task gradient, "
                         "developed for physics-informed neural networks, whose residual and "
                         "boundary losses conflict strongly; its paper also reports it on a "
                         "multi-task benchmark (CelebA).",
            "struggles_with": "It normalises the gradients, so their magnitudes play no part in "
                              "the direction, it needs the whole Jacobian, and its pseudo-inverse"
                              " can be ill-conditioned with many tasks.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "config", "steps": 300},
                       "why": "The left and right digits share one trunk and their gradients "
                              "often conflict: watch the cosines and how ConFIG combines them."},
        },
    ),
)
