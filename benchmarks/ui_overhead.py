"""How much does watching a run live in the app slow its training down?

Trains the same configuration twice and reads the speed of each from the store's ``time_s``
records (seconds since training began, so start-up and torch's import are left out):

  (a) headless: ``python -m mtl_core run --config ... --json``;
  (b) through the app: ``streamlit run app.py`` served locally, a headless Chromium on the Train
      page presses Train and keeps the live dashboard open (polling, drawing) until the run ends.

Both train with the same number of torch threads (``--threads``; default: all cores but one, the
one a served app leaves to the server and the browser). Prints steps/s of each and the ratio
(b) / (a); the goal is >= 0.8.
Run: python -m benchmarks.ui_overhead [--suite synthetic] [--steps 3000] [--threads N] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from benchmarks.served_app import ROOT, chromium_page, served_app
from mtl_core.config import RunConfig
from mtl_core.runs.store import TERMINAL, Store


def steps_per_second(store: Store, run_id: int) -> float:
    times = store.scalars(run_id, split="train", metric="time_s").sort_values("step")
    steps = times["step"].iloc[-1] - times["step"].iloc[0]
    return float(steps / (times["value"].iloc[-1] - times["value"].iloc[0]))


def threads_env(threads: int) -> dict[str, str]:
    # The app's worker and the CLI both take their torch thread count from MTL_TORCH_THREADS.
    return {**os.environ, "MTL_TORCH_THREADS": str(threads)}


def headless(config: RunConfig, workdir: Path, threads: int) -> float:
    store_path = workdir / "headless.db"
    config_path = workdir / "config.json"
    config_path.write_text(config.to_json())
    done = subprocess.run([sys.executable, "-m", "mtl_core", "run", "--config", str(config_path),
                           "--store", str(store_path), "--json"],
                          cwd=ROOT, env=threads_env(threads), capture_output=True, text=True, check=True)
    run_id = json.loads(done.stdout.strip().splitlines()[-1])["run_id"]
    return steps_per_second(Store(store_path), run_id)


def through_the_app(config: RunConfig, workdir: Path, threads: int) -> float:
    store_path = workdir / "app.db"
    with served_app(store_path, workdir / "streamlit.log", env=threads_env(threads)) as url:
        store = Store(store_path)
        with chromium_page(1600, 1150) as page:
            page.goto(f"{url}/train?{urlencode(config.to_query())}")
            page.get_by_role("button", name="Train", exact=True).click()
            page.wait_for_url(lambda u: "run=" in u, timeout=30_000)
            run_id = int(page.url.rsplit("run=", 1)[1].split("&")[0])
            while store.get_run(run_id).status not in TERMINAL:
                page.wait_for_timeout(200)  # the page keeps polling and drawing meanwhile
            status = store.get_run(run_id).status
    if status != "done":
        raise RuntimeError(f"the app's run ended as {status}: {store.get_run(run_id).message}")
    return steps_per_second(store, run_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="synthetic", help="a suite key; its default tasks")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    config = RunConfig.parse({"suite": args.suite, "steps": args.steps, "device": "cpu"})
    print(f"config: {config.suite} {','.join(config.tasks)} {config.arch} {config.method}, "
          f"{config.steps} steps, probe every {config.probe_every}, eval every {config.eval_every}; "
          f"{args.threads} torch thread(s) of {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            a = headless(config, Path(tmp), args.threads)
            b = through_the_app(config, Path(tmp), args.threads)
            print(f"[{repeat + 1}] headless CLI: {a:,.0f} steps/s | app + live Chromium dashboard: "
                  f"{b:,.0f} steps/s | ratio {b / a:.2f} (goal >= 0.8)")
            for name in ("headless.db", "app.db"):
                for suffix in ("", "-wal", "-shm"):
                    Path(tmp, name + suffix).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
