"""Gradient methods that solve a small problem over the task weights each step (MGDA, CAGrad,
IMTL-G, Nash-MTL): the update is a weighted sum of the task gradients."""

from __future__ import annotations

from mtl_core.registry import FEATURES_COST, JACOBIAN_COST, Knob, MethodInfo, Paper

ENTRIES: tuple[MethodInfo, ...] = (
    MethodInfo(
        key="mgda",
        name="MGDA",
        kind="aggregation",
        category="multi-objective",
        summary="Step along the shortest vector in the convex hull of the task gradients: the "
                "direction that descends every task at once, or stops at a Pareto-stationary point.",
        formula=(r"w^\star = \arg\min_{w \in \Delta^{T}} \Big\lVert \sum_{t=1}^{T} w_t\, g_t \Big\rVert^2,"
                 r"\qquad d = \sum_{t=1}^{T} w^\star_t\, g_t"),
        cost=f"MGDA-UB (default): {FEATURES_COST}; exact: {JACOBIAN_COST}",
        factory="mtl_core.aggregation.mgda:MGDA",
        knobs=(
            Knob(name="variant", label="Variant", kind="choice", default="ub", choices=("ub", "exact"),
                 help="ub: solve on the gradients w.r.t. the shared representation (MGDA-UB, the "
                      "paper's proposal, one backward pass through the encoder); exact: on the "
                      "gradients w.r.t. the shared parameters (T backward passes)."),
            Knob(name="normalization", label="Gradient normalisation", kind="choice", default="none",
                 choices=("none", "l2"),
                 help="Divide each gradient by its norm before solving (the official code's 'l2'; the "
                      "weights then apply to the raw losses), or not (the paper)."),
        ),
        paper=Paper(authors="Sener & Koltun", title="Multi-Task Learning as Multi-Objective Optimization",
                    venue="NeurIPS", year=2018, arxiv="1810.04650"),
        extra={
            "simplified": "The official code's 'loss' and 'loss+' normalisations divide by the "
                          "task losses, which a gradient aggregator is not given; only 'none' and"
                          " 'l2' are offered.",
            "known_for": "A guarantee: when it can, its step decreases every task's loss to first"
                         " order, and it stops only at a Pareto-stationary point; MGDA-UB made it"
                         " cheap enough for deep networks.",
            "struggles_with": "The min-norm combination leans toward the task with the smallest "
                              "gradient, so tasks with large gradients can learn slowly; in later "
                              "benchmark tables (e.g. Nash-MTL's) it beats equal weighting on some "
                              "benchmarks and falls well behind on others.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "mgda", "steps": 300},
                       "why": "The left and right digits share one trunk and their gradients "
                              "often conflict: watch the cosines and how MGDA combines them."},
        },
    ),
    MethodInfo(
        key="imtl_g",
        name="IMTL-G",
        kind="aggregation",
        category="gradient balancing",
        summary="Weigh the task gradients (weights summing to 1) so that the update has the same "
                "projection onto every task's gradient direction: no task is favoured.",
        formula=(r"\alpha_{2:T} = g_1 U^{\top} \big(D U^{\top}\big)^{-1},\ \ "
                 r"\alpha_1 = 1 - \textstyle\sum_{t \ge 2} \alpha_t,\ \ "
                 r"D = \begin{bmatrix} g_1 - g_t \end{bmatrix}_{t \ge 2},\ "
                 r"U = \begin{bmatrix} u_1 - u_t \end{bmatrix}_{t \ge 2},\ u_t = \frac{g_t}{\lVert g_t \rVert};"
                 r"\qquad d = \sum_{t=1}^{T} \alpha_t\, g_t"),
        cost=f"features (default): {FEATURES_COST}; parameters: {JACOBIAN_COST}",
        factory="mtl_core.aggregation.imtl_g:IMTLG",
        knobs=(
            Knob(name="gradients", label="Gradients on", kind="choice", default="features",
                 choices=("features", "parameters"),
                 help="features: the task gradients w.r.t. the shared representation (the paper's "
                      "Algorithm 1); parameters: w.r.t. the shared parameters."),
        ),
        paper=Paper(authors="Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang",
                    title="Towards Impartial Multi-task Learning", venue="ICLR", year=2021, arxiv=None),
        extra={
            "simplified": "Only the gradient half of IMTL; its loss half is the loss weighting "
                          "IMTL-L.",
            "known_for": "Choosing the update whose projections on every task's unit gradient are"
                         " equal: a closed-form, hyper-parameter-free way to treat the tasks "
                         "impartially.",
            "struggles_with": "It equalises projections rather than removing conflict, needs the "
                              "whole Jacobian, and its linear system can be ill-conditioned when "
                              "task gradients are nearly parallel.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "imtl_g", "steps": 300},
                       "why": "The left and right digits share one trunk and their gradients "
                              "often conflict: watch the cosines and how IMTL-G combines them."},
        },
    ),
    MethodInfo(
        key="cagrad",
        name="CAGrad",
        kind="aggregation",
        category="multi-objective",
        summary="Stay within a ball around the average gradient and, inside it, pick the direction "
                "that most improves the worst-off task.",
        formula=(r"d = \arg\max_{\lVert d - g_0 \rVert \le c \lVert g_0 \rVert}\ \min_t\ g_t^{\top} d"
                 r" = g_0 + \frac{c\lVert g_0\rVert}{\lVert g_w\rVert}\, g_w,\quad "
                 r"w = \arg\min_{w \in \Delta^{T}} g_w^{\top} g_0 + c\lVert g_0\rVert \lVert g_w\rVert,"
                 r"\quad g_0 = \tfrac{1}{T}\sum_t g_t;\qquad \text{update} = \frac{T\, d}{1 + c^2}"),
        cost=JACOBIAN_COST,
        factory="mtl_core.aggregation.cagrad:CAGrad",
        knobs=(
            Knob(name="c", label="Ball radius c", default=0.5, low=0.0, high=1.5,
                 help="Radius of the ball around the average gradient, relative to its norm: 0 is "
                      "gradient descent on the sum; larger c favours the worst-off task more "
                      "(paper: 0.5; 0.4 on NYUv2 and Cityscapes)."),
            Knob(name="rescale", label="Rescaling", kind="choice", default="quadratic",
                 choices=("quadratic", "linear", "none"),
                 help="Divide the update by 1 + c² (quadratic, the official NYUv2 / Cityscapes code), "
                      "by 1 + c (linear, the paper's toy), or not at all."),
        ),
        paper=Paper(authors="Liu, Liu, Jin, Stone & Liu",
                    title="Conflict-Averse Gradient Descent for Multi-task Learning", venue="NeurIPS",
                    year=2021, arxiv="2110.14048"),
        extra={
            "known_for": "Trading the average loss off against the worst task's improvement while"
                         " still converging to a minimum of the average loss; strong on NYUv2, "
                         "CityScapes and Meta-World.",
            "struggles_with": "Its constant c must be tuned per problem (c = 0 is the plain "
                              "average; large c approaches MGDA), and each step solves a small "
                              "optimisation over the whole Jacobian.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "cagrad", "steps": 300},
                       "why": "The left and right digits share one trunk and their gradients "
                              "often conflict: watch the cosines and how CAGrad combines them."},
        },
    ),
    MethodInfo(
        key="nash_mtl",
        name="Nash-MTL",
        kind="aggregation",
        category="multi-objective",
        summary="Treat the tasks as players bargaining over the update: take the Nash bargaining "
                "solution, in which each task's first-order progress is the inverse of its weight.",
        formula=(r"d = \sum_{t=1}^{T} w_t\, g_t,\quad w_t\,(G w)_t = 1,\ w > 0,\ \ "
                 r"G = \frac{J J^{\top}}{\lVert J J^{\top} \rVert_F};\qquad "
                 r"d \leftarrow d \cdot \min\!\Big(1, \frac{\text{max\_norm}}{\lVert d \rVert}\Big)"),
        cost=JACOBIAN_COST,
        factory="mtl_core.aggregation.nash_mtl:NashMTL",
        knobs=(
            Knob(name="update_weights_every", label="Recompute weights every", kind="int", default=1,
                 low=1, high=100,
                 help="Solve for new weights every this many steps and reuse them in between (paper: 1; "
                      "larger is cheaper)."),
            Knob(name="optim_niter", label="Solver iterations", kind="int", default=20, low=1, high=100,
                 help="Most solver iterations per solve (the paper's 20); here they are Newton steps, "
                      "which usually converge in under ten."),
            Knob(name="max_norm", label="Max update norm", default=1.0, low=0.0, high=100.0,
                 help="Clip the update of the shared parameters to this norm, as the official code "
                      "does (0: no clipping)."),
        ),
        paper=Paper(authors="Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya",
                    title="Multi-Task Learning as a Bargaining Game", venue="ICML", year=2022,
                    arxiv="2202.01017"),
        extra={
            "simplified": "The bargaining condition is solved by a dedicated Newton method on the"
                          " T x T matrix instead of the official code's convex solver (same "
                          "solution); the task heads get their own unweighted gradients.",
            "known_for": "Treating the update as a bargaining game between the tasks, which makes"
                         " it invariant to the gradients' scales; at or near the top of NYUv2, "
                         "CityScapes, QM9 and MT10 in its paper.",
            "struggles_with": "Among the costliest per step (the whole Jacobian plus an iterative"
                              " solver); its authors update the weights only every few steps to "
                              "afford it, and FAMO later came close for far less.",
            "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "nash_mtl", "steps": 300},
                       "why": "The left and right digits share one trunk and their gradients "
                              "often conflict: watch the cosines and how Nash-MTL combines them."},
        },
    ),
)
