"""A classroom on one server: 30 sessions open Train and press it together (benchmarks/load.py's
scenario, with shorter runs). Every session is served to the end, every accepted run ends as
its person expects (done; stopped by its Stop; failed or diverged where the set-up says so), and
the server's memory stays bounded. The fault cases, under that load: a tab closed right after
Train leaves its run training, and another session sees it done; Stop stops a running run; the
per-session cap refuses the extra run in one sentence; a run that raises is ``failed`` and a
diverging one ``diverged``, each page showing the stored message (no traceback) with every
recorded step kept, while the other runs go on. Hostile sessions beside them (heavy links, a
reload storm, Stop on others' runs) get refusals, and take nothing from the honest runs.

Speed (the p95 page-update time) is printed, not asserted: benchmarks/load.py measures it.
"""

from __future__ import annotations

import pytest

from benchmarks.load import CAP, report, run_load, serve

pytestmark = pytest.mark.slow

SESSIONS = 30
TRAINERS = 12
# Server + workers + the cost estimator's process on this 2-core machine: 1.9-2.1 GiB at the peak
# (torch in each worker, 0.4 GiB in the estimator, and in the server once the Gradient lab's heavy
# link has been opened). Unbounded growth (sessions or runs that never let go) would pass this
# within the run.
PEAK_RSS_LIMIT_KIB = int(2.5 * 1024 * 1024)


def test_thirty_sessions_pressing_train_together_are_all_served(tmp_path):
    # Every run is a worker process that imports torch (~3 s of CPU): 30 of them take this 2-core
    # machine 2-3 minutes, more than the suite's budget for this test. So 12 of the 30 sessions
    # train (the five fault cases among them) while 18 reload the Runs page; two runs train at a
    # time (MTL_MAX_RUNS=2). benchmarks/load.py has all 30 train, one at a time.
    with serve(tmp_path / "load.db", max_runs=2, cap=CAP) as server:
        result = run_load(server, sessions=SESSIONS, trainers=TRAINERS, steps=20, timeout=240)
    print(report(result, None))
    broken = [(p.error, p.exceptions) for p in result.people if p.error or p.exceptions]
    assert result.held == SESSIONS, broken
    # Every trainer's run was accepted once, the cap's person had CAP accepted and one refused.
    assert len(result.submitted) == TRAINERS - 1 + CAP
    assert result.lost == [], {r: result.statuses.get(r) for r in result.lost}
    assert result.completed == len(result.submitted)
    failed = {name: seen for name, (ok, seen) in result.faults.items() if not ok}
    assert len(result.faults) == 5 and not failed, failed
    assert result.peak_rss_kib < PEAK_RSS_LIMIT_KIB, result.peak_rss_kib
    # The hostile sessions beside them: the heavy links refused in a sentence that names a knob,
    # nothing of theirs queued; a reload storm held to the cap; Stop on others' runs refused (the
    # honest runs all ended as their people expected: `lost` above).
    hostile = result.hostile
    assert hostile is not None and not hostile.errors, hostile
    assert "would need about" in hostile.heavy["train"][1] and "lower" in hostile.heavy["train"][1]
    assert "would take about" in hostile.heavy["gradient_lab"][1]
    assert hostile.heavy_runs == 0
    assert hostile.storm_reconnects == 8 and 1 <= hostile.storm_most_live <= CAP
    if hostile.stops_pressed:
        assert any("belongs to someone else" in text or "left" in text for text in hostile.refusals)
    assert len(result.times) > 3 * SESSIONS  # each session opened, then polled or reloaded
