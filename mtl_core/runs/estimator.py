"""The run budget's estimates (:mod:`mtl_core.runs.budget`), made in a process of their own for a
served app.

An estimate traces the run's step with torch: torch's import costs the process that makes it
~7 s of CPU, and a trace holds the interpreter's lock for up to a second on the largest set-ups,
while every page of a classroom waits for that lock. So a server hands its estimates to this
child: it imports torch once, at the server's start, on a core of its own (0.4 GiB of memory),
and answers one request at a time; the server's threads wait on its pipe without holding their
interpreter's lock.

Protocol (JSON lines): the child prints ``ready`` once torch and the machine's speed are in, then
answers each config on stdin with ``{"estimate": {...}}`` or ``{"error": "..."}``; end of stdin
(the server is gone) ends it. A child that dies or hangs is replaced; while none answers, the
server estimates in its own process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import subprocess
import sys
import threading

from mtl_core.config import ConfigError, RunConfig
from mtl_core.runs import budget
from mtl_core.suites import user_tables

START_TIMEOUT_S = 120.0  # torch's import on a loaded 2-core machine took 11 s; a cold disk, more
ANSWER_TIMEOUT_S = 60.0  # the largest set-ups trace in about a second


class EstimatorGone(RuntimeError):
    """The child did not answer (it died, hung or could not start)."""


class Estimator:
    """A child process that makes :func:`mtl_core.runs.budget.estimate_here` estimates; thread-safe
    (one request at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._ready = False

    def start(self) -> None:
        """Start the child now (it warms up while the server starts); returns at once."""
        with self._lock:
            self._spawn()

    def estimate(self, config: RunConfig) -> budget.Estimate:
        """``config``'s estimate. A child that has died since the last call is replaced and asked
        again, once; EstimatorGone if that one does not answer either."""
        # One line: the config, and where people's tables are stored (a config may name one; the
        # folders this process knows, its store's among them, may have grown since the child began).
        request = json.dumps({"config": json.loads(config.to_json()),
                              "tables": [str(root) for root in user_tables.search_roots()]}) + "\n"
        with self._lock:
            for attempt in (1, 2):
                self._spawn()
                try:
                    if not self._ready:
                        self._expect_ready()
                    self._process.stdin.write(request)
                    self._process.stdin.flush()
                    answer = json.loads(self._read_line(ANSWER_TIMEOUT_S))
                    break
                except (OSError, ValueError, EstimatorGone) as error:
                    self._kill()
                    if attempt == 2:
                        raise EstimatorGone(f"the estimator process did not answer ({error})") from error
        if "error" in answer:  # the config's fault (a table deleted meanwhile): the person's to fix
            raise ConfigError([answer["error"]]) if answer.get("config_error") else ValueError(answer["error"])
        return budget.Estimate(**answer["estimate"])

    def estimate_or_here(self, config: RunConfig) -> budget.Estimate:
        """:meth:`estimate`, or, while no child answers, the estimate made in this process: slower
        for everyone, but never a run let through unpriced."""
        try:
            return self.estimate(config)
        except EstimatorGone as error:
            print(f"mtl: {error}; estimating in this process this once", file=sys.stderr, flush=True)
            return budget.estimate_here(config)

    def _spawn(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._ready = False
        # stderr is the server's: a child's crash shows in its log.
        self._process = subprocess.Popen(
            [sys.executable, "-m", "mtl_core.runs.estimator"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def _expect_ready(self) -> None:
        line = self._read_line(START_TIMEOUT_S)
        if line.strip() != "ready":
            raise EstimatorGone(f"it said {line.strip()!r} instead of 'ready'")
        self._ready = True

    def _read_line(self, timeout: float) -> str:
        # The child writes one line and then waits for the next request, so nothing is left in
        # the pipe's reader after a readline: waiting on the pipe itself is enough.
        stdout = self._process.stdout
        readable, _, _ = select.select([stdout], [], [], timeout)
        if not readable:
            raise EstimatorGone(f"no answer in {timeout:g} s")
        line = stdout.readline()
        if not line:
            raise EstimatorGone("it exited")
        return line

    def _kill(self) -> None:
        process, self._process, self._ready = self._process, None, False
        if process is None:
            return
        with contextlib.suppress(OSError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            process.wait(5)
        for stream in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                stream.close()


_started: list[Estimator] = []
_starting = threading.Lock()


def estimate_elsewhere() -> None:
    """From now on, make this process's estimates in a child (started now, so that it is warm when
    the first person presses Train). The app calls this; the command line estimates nothing."""
    with _starting:
        if _started:
            return
        estimator = Estimator()
        estimator.start()
        _started.append(estimator)
    budget.estimate_with(estimator.estimate_or_here)


def main() -> int:
    """The child: warm up, say ``ready``, answer requests (a config and the folders where people's
    tables are stored, see :mod:`mtl_core.suites.user_tables`) until stdin ends (or the server,
    ending, closes the pipe or interrupts the group: quietly then)."""
    try:
        budget.warm_up(background=False)
        print("ready", flush=True)
        for line in sys.stdin:
            try:
                request = json.loads(line)
                for root in request.get("tables", []):
                    user_tables.add_search_root(root)
                answer = {"estimate": dataclasses.asdict(budget.estimate_here(RunConfig.parse(request["config"])))}
            except ConfigError as error:  # one config's failure is its answer, not the child's end
                answer = {"error": str(error), "config_error": True}
            except Exception as error:
                answer = {"error": f"{type(error).__name__}: {error}"}
            print(json.dumps(answer), flush=True)
    except (BrokenPipeError, KeyboardInterrupt):
        # The server has gone (killed, or Ctrl-C in its terminal reached the group): nothing to say.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so that exiting flushes nowhere
    return 0


if __name__ == "__main__":
    sys.exit(main())
