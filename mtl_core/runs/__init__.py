"""Run services: everything that keeps runs beyond one training loop.

The SQLite store (``store``), the job manager and its worker processes (``jobs``, ``worker``), the
per-session caps (``limits``), grids of runs and their results table (``sweep``), the single-task
baselines that delta-m compares against (``baselines``), sharing a set-up as a file or a command
line (``share``), and the frames a page draws of a stored run (``view``). This layer sits above the
engine: it may import ``mtl_core.engine``, ``config``, ``registry`` and the registries of suites,
architectures and methods; never ``figures``, ``studies``, ``lab`` or streamlit. Only the worker
trains (it imports the engine, and so torch); the rest is pandas and SQLite, cheap for a page.
"""
