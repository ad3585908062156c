"""Loss weighting: methods that set a weight per task loss and backpropagate their sum once."""

from __future__ import annotations

from mtl_core.registry import Knob, MethodInfo, Paper

ENTRIES: tuple[MethodInfo, ...] = (
    MethodInfo(
        key="ew",
        name="Equal weighting",
        kind="weighting",
        category="loss weighting",
        summary="Add the task losses up, each with weight 1: the baseline every method is measured against.",
        formula=r"\mathcal{L}(\theta) = \sum_{t=1}^{T} \mathcal{L}_t(\theta)",
        cost="1 backward pass",
        factory="mtl_core.weighting.equal:EqualWeighting",
        extra={
            "known_for": "A strong baseline: careful comparisons (Xin et al. 2022; Kurin et al. "
                         "2022) found that, with tuned learning rates and regularisation, few "
                         "methods beat it reliably.",
            "struggles_with": "Losses on different scales: the largest loss dominates the shared "
                              "gradient and the tasks with small losses barely learn.",
            "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "ew", "steps": 400},
                       "why": "The baseline on losses of very different scales: ink's loss is "
                              "about 100x the digit loss, so the sum is nearly all ink."},
        },
    ),
    MethodInfo(
        key="static",
        name="Static weights",
        kind="weighting",
        category="loss weighting",
        summary="Weigh each task's loss by a fixed number you choose: hand-tuned linear scalarisation, "
                "what the adaptive methods set out to replace.",
        formula=r"\mathcal{L}(\theta) = \sum_{t=1}^{T} w_t\,\mathcal{L}_t(\theta), \quad w_t \ge 0 \text{ fixed}",
        cost="1 backward pass",
        factory="mtl_core.weighting.static:StaticWeighting",
        knobs=(
            Knob(name="weights", label="Task weights", kind="floats", default="", low=0.0, high=1000.0,
                 help="One non-negative weight per task, comma-separated, in the order the tasks are "
                      "listed (e.g. 1, 0.5); leave empty for all ones."),
        ),
        extra={
            "known_for": "The simplest fix for losses on different scales; with weights found by "
                         "a grid search it is a baseline many adaptive methods do not reliably "
                         "beat (Xin et al. 2022).",
            "struggles_with": "The weights are searched by hand, a cost that grows quickly with "
                              "the number of tasks, and fixed weights cannot follow losses whose "
                              "scales change during training.",
            "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "static", "steps": 400, "method_params": {"weights": "1, 0.01"}},
                       "why": "Ink's loss is about 100x the digit loss: a weight of 0.01 on ink "
                              "puts the two on one scale by hand."},
        },
    ),
    MethodInfo(
        key="uw",
        name="Uncertainty weighting",
        kind="weighting",
        category="loss weighting",
        summary="Learn a noise level per task and weigh each loss by its inverse: noisy or large "
                "losses get small weights, with a log penalty so the weights do not vanish.",
        formula=r"\mathcal{L} = \sum_{t=1}^{T} \Bigl( \frac{\mathcal{L}_t}{2\sigma_t^2} + \log \sigma_t \Bigr)"
                r"\quad (\sigma_t \text{ learnt; optimum } \sigma_t^2 = \mathcal{L}_t)",
        cost="1 backward pass",
        factory="mtl_core.weighting.uncertainty:UncertaintyWeighting",
        paper=Paper(authors="Kendall, Gal & Cipolla",
                    title="Multi-Task Learning Using Uncertainty to Weigh Losses for Scene Geometry and Semantics",
                    venue="CVPR", year=2018, arxiv="1705.07115"),
        extra={
            "simplified": "The paper weighs classification losses by 1/σ² and regression losses "
                          "by 1/(2σ²); like LibMTL we use 1/(2σ²) for every task.",
            "known_for": "Putting losses in different units (classes, metres) on one scale with "
                         "no tuning; widely used in dense prediction (depth, segmentation, "
                         "normals).",
            "struggles_with": "Its weights follow the size of the losses, not the tasks' "
                              "importance: a task whose loss nears zero gets a weight that keeps "
                              "growing, and the other tasks lose out.",
            "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "uw", "steps": 400},
                       "why": "Ink's loss is about 100x the digit loss, so the sum is all ink: "
                              "see how uncertainty weighting changes the digit accuracy against "
                              "Equal weighting."},
        },
    ),
    MethodInfo(
        key="gradnorm",
        name="GradNorm",
        kind="weighting",
        category="loss weighting",
        summary="Learn the weights so that each task's gradient norm on the last shared layer matches "
                "a common norm scaled by how slowly that task trains.",
        formula=r"\min_{w}\ \sum_{t=1}^{T} \Bigl|\, \|\nabla_W w_t \mathcal{L}_t\| - \bar G\, r_t^{\alpha} \Bigr|,"
                r"\quad r_t = \frac{\mathcal{L}_t / \mathcal{L}_t(0)}{\frac{1}{T}\sum_k \mathcal{L}_k / \mathcal{L}_k(0)},"
                r"\quad \sum_t w_t = T",
        cost="1 backward pass + T backward passes through the heads and the last shared layer",
        factory="mtl_core.weighting.gradnorm:GradNorm",
        knobs=(
            Knob(name="alpha", label="Restoring force α", default=1.5, low=0.0, high=3.0,
                 help="How hard GradNorm pulls the tasks' training rates together; 0 asks for equal "
                      "gradient norms, larger values favour tasks that lag (paper: 1.5)."),
        ),
        paper=Paper(authors="Chen, Badrinarayanan, Lee & Rabinovich",
                    title="GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep Multitask Networks",
                    venue="ICML", year=2018, arxiv="1711.02257"),
        extra={
            "simplified": "The weights are T·softmax of learnt logits (as in LibMTL), positive "
                          "and summing to T by construction, instead of the paper's step-then-"
                          "renormalise; they learn with the run's optimiser and learning rate.",
            "known_for": "Balancing the tasks' gradient norms on the last shared layer by how "
                         "fast each task trains; one of the first adaptive weightings, whose paper"
                         " matches or beats an exhaustive grid search of static weights with a "
                         "single hyper-parameter.",
            "struggles_with": "It adds a hyper-parameter (α) and extra backward passes, and "
                              "balances gradient norms only, not directions: conflicting tasks "
                              "still conflict.",
            "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "gradnorm", "steps": 400},
                       "why": "Ink's loss is about 100x the digit loss, so the sum is all ink: "
                              "see how GradNorm changes the digit accuracy against Equal "
                              "weighting."},
        },
    ),
    MethodInfo(
        key="dwa",
        name="Dynamic Weight Average",
        kind="weighting",
        category="loss weighting",
        summary="Give more weight to the tasks whose loss fell least over the last two epochs "
                "(a softmax of the loss ratios).",
        formula=r"w_t = \frac{T \exp(r_t / \tau)}{\sum_k \exp(r_k / \tau)},"
                r"\quad r_t = \frac{\bar{\mathcal{L}}_t(e-1)}{\bar{\mathcal{L}}_t(e-2)}",
        cost="1 backward pass",
        factory="mtl_core.weighting.dwa:DynamicWeightAverage",
        knobs=(
            Knob(name="temperature", label="Temperature τ", default=2.0, low=0.1, high=100.0, log=True,
                 help="Softens the weights: large values make them equal, small ones favour the "
                      "slowest task strongly (paper: 2)."),
            Knob(name="window", label="Epoch length (steps)", kind="int", default=25, low=0, high=100000,
                 help="How many steps make one 'epoch' whose average loss DWA compares; 0 means one "
                      "true pass over the training data, as in the paper."),
        ),
        paper=Paper(authors="Liu, Johns & Davison", title="End-to-End Multi-Task Learning with Attention",
                    venue="CVPR", year=2019, arxiv="1803.10704"),
        extra={
            "simplified": "An 'epoch' is a window of 25 steps by default (the window of the step-"
                          "wise DWA in the Nash-MTL and FAMO code) so that short runs see the "
                          "weights move; set the window to 0 for true epochs, as in the paper.",
            "known_for": "Needing only the loss history: no extra gradients and no learnt "
                         "parameters, so it costs what equal weighting costs.",
            "struggles_with": "It reacts to each loss's rate of decrease, not its size, so a loss"
                              " 100x larger than the others keeps dominating; and its weights come"
                              " from the two previous epochs, so they lag behind a change.",
            "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "dwa", "steps": 400},
                       "why": "DWA weighs by how fast each loss falls, not by its size: see that "
                              "ink's 100x larger loss still dominates, unlike with scale-"
                              "invariant methods."},
        },
    ),
    MethodInfo(
        key="rlw",
        name="Random loss weighting",
        kind="weighting",
        category="loss weighting",
        summary="Draw fresh random weights every step (softmax of a standard normal draw): the "
                "litmus test any clever weighting should beat.",
        formula=r"w = \operatorname{softmax}(z),\quad z \sim \mathcal{N}(0, I_T) \text{ each step},"
                r"\quad \mathcal{L} = \sum_{t=1}^{T} w_t \mathcal{L}_t",
        cost="1 backward pass",
        factory="mtl_core.weighting.rlw:RandomLossWeighting",
        paper=Paper(authors="Lin, Ye, Zhang & Tsang",
                    title="Reasonable Effectiveness of Random Weighting: A Litmus Test for Multi-Task Learning",
                    venue="TMLR", year=2022, arxiv="2111.10603"),
        extra={
            "known_for": "Showing that random weights do about as well as many elaborate "
                         "weighting and gradient methods on standard benchmarks (Lin et al. "
                         "2022): a litmus test.",
            "struggles_with": "On average its weights are equal, so it does nothing about scale "
                              "(a much larger loss still dominates), and the random weights add "
                              "noise to training.",
            "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "rlw", "steps": 400},
                       "why": "Random weights on losses 100x apart: compare with Equal weighting "
                              "to see that randomness alone does not fix scale."},
        },
    ),
    MethodInfo(
        key="gls",
        name="Geometric loss strategy",
        kind="weighting",
        category="loss weighting",
        summary="Minimise the geometric mean of the task losses, which no loss's scale can dominate: "
                "each task is weighted by the inverse of its loss.",
        formula=r"\mathcal{L} = \Bigl(\prod_{t=1}^{T} \mathcal{L}_t\Bigr)^{1/T},"
                r"\quad \text{implied weights } w_t = \frac{\mathcal{L}}{T\,\mathcal{L}_t}",
        cost="1 backward pass",
        factory="mtl_core.weighting.gls:GeometricLossStrategy",
        paper=Paper(authors="Chennupati, Sistu, Yogamani & Rawashdeh",
                    title="MultiNet++: Multi-Stream Feature Aggregation and Geometric Loss Strategy for "
                          "Multi-Task Learning",
                    venue="CVPR Workshops", year=2019, arxiv="1904.08492"),
        extra={
            "known_for": "Scale invariance with no hyper-parameter: multiplying one task's loss "
                         "by a constant leaves the update's direction unchanged.",
            "struggles_with": "A task whose loss approaches zero gets an ever larger weight "
                              "(proportional to 1/L_t), which can destabilise training once one "
                              "task is nearly solved.",
            "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "gls", "steps": 400},
                       "why": "Ink's loss is about 100x the digit loss, so the sum is all ink: "
                              "see how the geometric loss changes the digit accuracy against "
                              "Equal weighting."},
        },
    ),
    MethodInfo(
        key="imtl_l",
        name="IMTL-L",
        kind="weighting",
        category="loss weighting",
        summary="Learn a scale per task that makes the scaled losses equal: the loss half of "
                "Impartial Multi-task Learning.",
        formula=r"\mathcal{L} = \sum_{t=1}^{T} \bigl( e^{s_t}\mathcal{L}_t - s_t \bigr)"
                r"\quad (s_t \text{ learnt; optimum } e^{s_t}\mathcal{L}_t = 1)",
        cost="1 backward pass",
        factory="mtl_core.weighting.imtl_l:IMTLL",
        paper=Paper(authors="Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang",
                    title="Towards Impartial Multi-task Learning", venue="ICLR", year=2021, arxiv=None),
        extra={
            "known_for": "Scale invariance learnt with one scale per task and no hyper-parameter;"
                         " the paper pairs it with its gradient half, IMTL-G.",
            "struggles_with": "Like uncertainty weighting it equalises the scaled losses, so a "
                              "nearly solved task with a tiny loss is weighted up strongly; it "
                              "does nothing about conflicting directions.",
            "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "imtl_l", "steps": 400},
                       "why": "Ink's loss is about 100x the digit loss, so the sum is all ink: "
                              "see how IMTL-L changes the digit accuracy against Equal weighting."},
        },
    ),
    MethodInfo(
        key="famo",
        name="FAMO",
        kind="weighting",
        category="loss weighting",
        summary="Weigh the log-losses with a learnt task distribution, updated after every step so "
                "that all losses fall at the same rate, at the cost of one extra forward pass.",
        formula=r"z = \operatorname{softmax}(\xi),\quad \mathcal{L} = \frac{1}{c} \sum_t z_t \log \mathcal{L}_t,"
                r"\ c = \sum_t \frac{z_t}{\mathcal{L}_t} \text{ (held constant)};\quad \xi \leftarrow \xi - \beta\,"
                r"\operatorname{Adam}\bigl(J_{\mathrm{softmax}}^{\top}\,\delta + \gamma \xi\bigr),"
                r"\ \delta_t = \log \mathcal{L}_t^{\text{before}} - \log \mathcal{L}_t^{\text{after}}",
        cost="1 backward pass + 1 forward pass",
        factory="mtl_core.weighting.famo:FAMO",
        knobs=(
            Knob(name="gamma", label="Logit decay γ", default=0.01, low=0.0, high=1.0,
                 help="Weight decay on the task logits: keeps the weights from drifting far from "
                      "equal (paper: 0.01)."),
            Knob(name="lr", label="Logit learning rate β", default=0.025, low=1e-4, high=1.0, log=True,
                 help="Step size of the Adam update of the task logits (paper: 0.025)."),
        ),
        paper=Paper(authors="Liu, Feng, Stone & Liu", title="FAMO: Fast Adaptive Multitask Optimization",
                    venue="NeurIPS", year=2023, arxiv="2306.03792"),
        extra={
            "simplified": "The losses' lower bounds are taken as 0, as in the paper's "
                          "experiments; the paper's gradient clipping of the network is left out.",
            "known_for": "Results close to the Jacobian-based methods such as Nash-MTL on "
                         "standard benchmarks at the cost of a loss weighting (O(1) extra time "
                         "and memory per step).",
            "struggles_with": "It takes the logarithm of the losses, so they must stay positive, "
                              "and adds an extra forward pass and two hyper-parameters; its "
                              "weights follow the last step and are noisy with small batches.",
            "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "famo", "steps": 400},
                       "why": "FAMO balances the rates at which the log-losses fall, so ink's "
                              "100x larger loss does not dominate: compare the digit accuracy "
                              "with Equal weighting."},
        },
    ),
)
