"""Figures: pure functions from DataFrames (and arrays) to altair and plotly charts.

One module per page's family of charts (``run`` for one run's curves and heatmaps, ``compare``,
``affinity``, ``lab``, ``sharing``), the survey's map (``taxonomy``) and chart files for slides
(``export``). Tests call them without a browser; pages only place what they return. Figures may
import the registries, ``config``, the engine's pure summaries (``engine.metrics``,
``engine.conflict``), the lab's toy problem and ``runs.sweep``'s formatting helpers; never the
store or the job manager (a figure draws data it is given, it does not fetch it), never torch at
import time, never streamlit.
"""
