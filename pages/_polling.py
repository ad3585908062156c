"""How often a live run is redrawn: status, loss and metrics every POLL_S; cosines, weights,
gradient norms and the update's diagnostics (they change with the probes) every DIAGNOSTICS_POLL_S.

Each redraw costs the server and the browser CPU the worker could train with. On a 2-core machine,
where all three share the two cores, benchmarks/ui_overhead.py measured training at 0.57-0.67x of a
headless run with a 0.5 s poll (an earlier session), 0.61-0.76x with 1 s, and 0.73-0.90x (median
0.85) with 2 s; machines with 4 cores or more poll every 0.5 s.
"""

from __future__ import annotations

import os

POLL_S = 0.5 if (os.cpu_count() or 1) >= 4 else 2.0
DIAGNOSTICS_POLL_S = 3 * POLL_S  # seven charts: the costliest redraw, and they change only with probes
# A run waiting in the queue: its page only needs to notice that it started. benchmarks/load.py
# (30 sessions, one run at a time) measured each poll at ~0.1 s of server CPU even with nothing
# to draw, so 29 queued pages polling at POLL_S kept the server saturated.
QUEUED_POLL_S = 2.5 * POLL_S
