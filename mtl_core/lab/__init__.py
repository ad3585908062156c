"""The Gradient lab's numbers: the CAGrad paper's two-objective toy problem (``problem``: losses,
analytic gradients, the loss grid), its compiled simulation (``toy``, with numba in ``kernel``),
and the explorer of what each gradient method makes of hand-set gradients (``explorer``). It may
import methods, config and the registry; never figures, runs, studies or streamlit. ``problem``
stays free of numba and torch, so a page that only draws the loss surface does not pay for them."""
