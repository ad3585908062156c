"""The command line: run (JSON result, same seed twice, config file + overrides), list, export,
one-line errors with exit code 2, Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from mtl_core.__main__ import main
from mtl_core.config import RunConfig
from mtl_core.runs.store import Store

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--suite", "synthetic", "--param", "suite.train_size=2000", "--steps", "20", "--eval-every", "10",
        "--probe-every", "5"]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str) -> dict:
    code, out, err = cli(capsys, "run", *argv, "--json")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1  # one JSON line on stdout; the bar went to stderr
    return json.loads(lines[0])


def test_run_prints_one_json_line_and_the_same_seed_gives_the_same_metrics(store_path, capsys):
    first = run_json(capsys, *TINY, "--seed", "3", "--name", "first")
    again = run_json(capsys, *TINY, "--seed", "3")
    other = run_json(capsys, *TINY, "--seed", "4")
    assert set(first) == {"run_id", "status", "steps", "seconds", "metrics"}
    assert first["status"] == "done" and first["steps"] == 20 and first["seconds"] > 0
    assert set(first["metrics"]) == {"y1", "y2"}
    for task in ("y1", "y2"):
        assert set(first["metrics"][task]) == {"loss", "mse"}
        assert 0.0 < first["metrics"][task]["mse"] < 100.0
    assert again["metrics"] == first["metrics"]
    assert other["metrics"] != first["metrics"]
    assert [first["run_id"], again["run_id"], other["run_id"]] == [1, 2, 3]

    store = Store(store_path)  # the runs are in the store the app reads
    info = store.get_run(first["run_id"])
    assert info.name == "first" and info.status == "done" and info.steps_done == 20
    assert info.device.startswith("cpu, ")  # with its thread count: CPU numbers depend on it
    assert store.final_metrics(first["run_id"]) == first["metrics"]


def test_the_progress_bar_reports_steps_speed_and_losses(store_path, capsys):
    code, out, err = cli(capsys, "run", *TINY)
    assert code == 0 and out == ""
    bar = [line for line in err.splitlines() if line.startswith("[")][-1]
    assert "20/20" in bar and "steps/s" in bar and "loss y1" in bar and "y2" in bar
    assert "run 1: done after 20 steps" in err


def test_flags_override_the_config_file_and_params_reach_the_knobs(store_path, tmp_path, capsys):
    base = RunConfig(suite="synthetic", steps=15, eval_every=5, probe_every=0, lr=0.01,
                     suite_params={"correlation": -0.5})
    config_file = tmp_path / "run.json"
    config_file.write_text(base.to_json())
    result = run_json(capsys, "--config", str(config_file), "--seed", "7", "--steps", "10",
                      "--param", "suite.correlation=0.9", "--param", "suite.train_size=2000")
    config = Store(store_path).get_run(result["run_id"]).config
    assert config.seed == 7 and config.steps == 10 and result["steps"] == 10
    assert config.lr == 0.01 and config.probe_every == 0  # from the file
    assert config.suite_params == {"correlation": 0.9, "train_size": 2000}
    assert set(result["metrics"]) == {"y1", "y2"} and set(result["metrics"]["y1"]) == {"loss", "mse"}


def test_list_and_export(store_path, tmp_path, capsys):
    run_id = run_json(capsys, *TINY, "--name", "listed")["run_id"]

    code, out, _ = cli(capsys, "list")
    assert code == 0 and "listed" in out and "done" in out and "y1 mse" in out
    code, out, _ = cli(capsys, "list", "--json")
    rows = json.loads(out)
    assert code == 0 and rows[0]["id"] == run_id and rows[0]["status"] == "done"
    assert rows[0]["steps_done"] == 20 and rows[0]["y1 mse"] > 0

    code, out, _ = cli(capsys, "export", str(run_id), "--csv")
    table = pd.read_csv(io.StringIO(out))
    assert code == 0
    assert list(table.columns) == ["run_id", "run_name", "step", "split", "task", "metric", "value"]
    assert set(table["run_name"]) == {"listed"} and table["step"].max() == 20
    assert len(table) == len(Store(store_path).scalars(run_id))

    out_file = tmp_path / "out" / "run.csv"
    out_file.parent.mkdir()
    code, out, err = cli(capsys, "export", str(run_id), "--csv", "--out", str(out_file))
    assert code == 0 and out == "" and pd.read_csv(out_file).equals(table)

    code, out, _ = cli(capsys, "export", str(run_id), "--config")
    assert code == 0 and RunConfig.from_json(out) == Store(store_path).get_run(run_id).config


@pytest.mark.parametrize(("argv", "says"), [
    (["run", "--suite", "imagenet"], "unknown suite 'imagenet'"),
    (["run", "--suite", "multidigits", "--tasks", "left,up"], "tasks: up not in"),
    (["run", "--lr", "0"], "lr: must be greater than 0"),
    (["run", "--lr", "-1"], "lr: must be greater than 0"),
    (["run", "--config", "no/such/file.json"], "no config file at"),
    (["run", "--config", "{broken}"], "no config file at"),
    (["run", "--param", "correlation=0.9"], "--param must look like group.knob=value"),
    (["run", "--param", "suite.nothing=1"], "has no setting 'nothing'"),
    (["run", "--steps", "many"], "invalid int value"),
    (["run", "--threads", "0"], "--threads must be between 1 and"),
    (["run", "--threads", "100000"], "--threads must be between 1 and"),
    (["export", "99", "--csv"], "There is no run store at"),  # nothing stored yet: not even a store
    (["export", "1"], "one of the arguments --csv --config is required"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_code_2(store_path, capsys, argv, says):
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err, err


def test_broken_json_config_is_one_line(store_path, tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text('{"suite": "synthetic",')
    code, _, err = cli(capsys, "run", "--config", str(broken))
    assert code == 2 and err.startswith("error: not valid JSON") and err.count("\n") == 1
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"suite": "synthetic", "lr": -1, "colour": "blue"}')
    code, _, err = cli(capsys, "run", "--config", str(wrong))
    assert code == 2 and "lr: must be greater than 0" in err and "colour: is not a setting" in err
    assert Store(tmp_path / "mtl.db").list_runs().empty  # nothing was started


def test_errors_from_a_real_process_have_no_traceback(tmp_path):
    env = {**os.environ, "MTL_STORE": str(tmp_path / "mtl.db"), "PYTHONPATH": str(ROOT)}
    for argv in (["run", "--suite", "nope"], ["export", "5", "--csv"]):
        done = subprocess.run([sys.executable, "-m", "mtl_core", *argv], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=60)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
        assert "Traceback" not in done.stderr


def test_ctrl_c_interrupts_the_run_keeps_its_records_and_exits_130(store_path, capsys):
    before = signal.getsignal(signal.SIGINT)

    def press_ctrl_c() -> None:
        # Only once the run has put in its own handler (and trained a few steps), so that a
        # mistake here cannot interrupt the test session itself.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if signal.getsignal(signal.SIGINT) is not before and store_path.exists() \
                    and Store(store_path).last_step(1) >= 5:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.01)

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    code, out, err = cli(capsys, "run", "--suite", "synthetic", "--steps", "1000000", "--json")
    presser.join(timeout=5)
    assert code == 130, err
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    result = json.loads(out)
    info = Store(store_path).get_run(1)
    assert result["status"] == info.status == "interrupted" and info.steps_done == result["steps"] >= 5
    assert info.message.startswith("interrupted by SIGINT after step")
    assert Store(store_path).scalars(1, metric="loss")["step"].max() == info.steps_done


@pytest.mark.parametrize(("method", "knob"), [("cagrad", "method.c=0.2"), ("uw", None),
                                              ("static", "method.weights=1,0.25"), ("upgrad", None)])
def test_every_kind_of_method_runs_from_the_command_line_with_its_knobs(store_path, capsys, method, knob):
    params = ["--param", knob] if knob else []
    result = run_json(capsys, *TINY, "--method", method, *params)
    assert result["status"] == "done" and set(result["metrics"]) == {"y1", "y2"}
    config = Store(store_path).get_run(result["run_id"]).config
    assert config.method == method
    if knob:
        name, value = knob.removeprefix("method.").split("=")
        assert str(config.method_params[name]).replace(" ", "") == value


def test_a_bad_method_knob_is_one_line(store_path, capsys):
    code, out, err = cli(capsys, "run", *TINY, "--method", "cagrad", "--param", "method.c=7")
    assert code == 2 and out == "" and err.count("\n") == 1 and "c must be between" in err, err


# --- list fits a terminal; catalogue ----------------------------------------------------------------

def test_list_fits_a_100_column_terminal_and_json_keeps_every_field(store_path, capsys):
    first = run_json(capsys, *TINY, "--name", "a run with a long name that a terminal cannot show whole")
    run_json(capsys, *TINY, "--method", "pcgrad")
    store = Store(store_path)
    store.create_run(RunConfig.parse({"suite": "digit_attributes", "tasks": ["digit", "parity", "large", "ink",
                                                                             "centre", "slant"],
                                      "arch": "cross_stitch", "method": "aligned_mtl_ub", "steps": 200000}),
                     status="queued", name="ew · hps · multidigits #2 (re-run) (run 15)")
    code, out, _ = cli(capsys, "list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4
    assert max(map(len, lines)) <= 100
    assert lines[0].split()[:7] == ["id", "name", "status", "suite", "method", "arch", "steps"]
    assert "a run with" in out and "…" in out  # a long name is cut, not wrapped
    assert "y1 mse" in out and "20/20" in out and "0/200000" in out and "aligned_mtl_ub" in out

    code, out, _ = cli(capsys, "list", "--json")
    rows = json.loads(out)
    assert rows[-1]["name"] == "a run with a long name that a terminal cannot show whole"
    assert rows[-1]["id"] == first["run_id"] and rows[-1]["y1 mse"] == first["metrics"]["y1"]["mse"]
    assert {"tasks", "created_at", "finished_at", "device", "message", "y2 loss"} <= set(rows[-1])


def test_a_table_too_wide_is_squeezed_and_its_last_column_cut():
    from mtl_core.__main__ import fit_table

    header = ("id", "name", "status", "suite", "method", "arch", "steps", "final validation metrics")
    row = ["12345", "n" * 60, "interrupted", "digit_attributes", "aligned_mtl_ub", "cross_stitch",
           "200000/200000", ", ".join(f"task{i} acc 0.{i}23" for i in range(6))]
    lines = fit_table(header, [row, row])
    assert max(map(len, lines)) <= 100
    assert all(line.endswith("…") for line in lines[1:])
    assert "interrupted" in lines[1] and "200000/200000" in lines[1]


def test_catalogue_lists_every_suite_task_architecture_method_and_knob_in_100_columns(capsys):
    from mtl_core.architectures import ARCHITECTURES
    from mtl_core.methods import METHODS
    from mtl_core.suites import SUITES

    code, out, err = cli(capsys, "catalogue")
    lines = out.splitlines()
    assert code == 0 and err == ""
    assert max(map(len, lines)) <= 100
    heads = {line.split()[0] for line in lines if line.startswith("  ") and not line.startswith("   ")}
    assert heads == set(SUITES.keys()) | set(ARCHITECTURES.keys()) | set(METHODS.keys())
    for suite in SUITES:
        for task in suite.tasks:
            assert any(line.split()[:3] == [task.name, task.kind, task.metric] for line in lines)
    for entry in [*SUITES, *ARCHITECTURES, *METHODS]:
        for knob in entry.knobs:
            assert any(line.split()[:1] == [knob.name] and "default" in line for line in lines), knob.name
    assert "whole number, 0 to 7" in out and "-1 to 1" in out


def test_catalogue_json_holds_every_registry_entry_with_its_knobs(capsys):
    from mtl_core.architectures import ARCHITECTURES
    from mtl_core.methods import METHODS
    from mtl_core.suites import SUITES

    code, out, _ = cli(capsys, "catalogue", "--json")
    data = json.loads(out)
    assert code == 0 and set(data) == {"suites", "architectures", "methods"}
    for name, registry in (("suites", SUITES), ("architectures", ARCHITECTURES), ("methods", METHODS)):
        assert [item["key"] for item in data[name]] == registry.keys()
        for item in data[name]:
            entry = registry[item["key"]]
            assert item["name"] == entry.name and item["summary"] == entry.summary
            assert [k["name"] for k in item["knobs"]] == [k.name for k in entry.knobs]
            for knob, stored in zip(entry.knobs, item["knobs"], strict=True):
                assert stored["default"] == knob.default and stored["kind"] == knob.kind
                assert (stored["low"], stored["high"], tuple(stored["choices"])) == (knob.low, knob.high,
                                                                                    knob.choices)
    for item in data["suites"]:
        suite = SUITES[item["key"]]
        assert [(t["name"], t["kind"], t["metric"]) for t in item["tasks"]] == [
            (t.name, t.kind, t.metric) for t in suite.tasks]
    assert all(isinstance(m["needs_jacobian"], bool) and m["category"] for m in data["methods"])
    assert all(a["category"] for a in data["architectures"])
