"""Studies: questions asked of many runs together, read from the run store. Task affinity from the
runs that measured it and how far two measures agree (``affinity``), pairwise transfer between
tasks (``transfer``), and the task groupings a matrix suggests (``grouping``). A study plans runs
and reads their results; it never trains: whoever runs it passes a ``train(config) -> run id``
(the app's job manager, or :func:`mtl_core.runs.worker.train_here`). It may import the engine, the
runs' store and baselines, config, suites and the registry; never figures, lab or streamlit, and
not the worker or the job manager (they sit beside it, and would bring torch to the pages)."""
