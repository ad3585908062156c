"""The engine: training one run, and the measurements taken while it trains. The step loop
(``trainer``), the task Jacobian and its statistics (``jacobian``), gradient-conflict statistics
(``conflict``), TAG's lookahead affinity (``lookahead``), metrics, devices, and the StepRecord the
trainer yields (``records``). It may import methods, architectures, suites, config and the
registry; never runs, studies, lab, figures or streamlit: everything above builds on it."""
