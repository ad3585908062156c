"""Issue 16's smaller attacks on the command line and the server's set-up, each as a test:
divergence with TAG on, hostile config files, absurd thread counts, signals, strict types,
reading a missing store, run names (length, spreadsheet formulas), the upload limit, the
server's settings and ``serve``, and the exact command line of every setting."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mtl_core.__main__ import MAX_THREADS, _finite, build_parser, config_from_args
from mtl_core.config import RunConfig
from mtl_core.runs import settings
from mtl_core.runs.share import _FLAGS, cli_line, config_args
from mtl_core.runs.store import MAX_NAME_CHARS, Store, spreadsheet_safe
from tests.test_cli import cli

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--suite", "synthetic", "--param", "suite.train_size=2000"]




def strict_json(text: str):
    """json.loads that refuses NaN and Infinity (which Python writes but JSON does not have)."""
    def refuse(constant: str):
        raise AssertionError(f"{constant} in JSON output")
    return json.loads(text, parse_constant=refuse)


def one_line_error(code: int, out: str, err: str) -> None:
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err


# --- 1. divergence with TAG on --------------------------------------------------------------------

def test_divergence_with_tag_on_ends_diverged_keeps_every_step_and_prints_valid_json(store_path, tmp_path, capsys):
    # Adam at lr 10 on this seed: step 1 is finite, the lookahead of step 2 overflows (its affinity
    # is NaN), so the run ends there; it used to end `failed` ("Out of range float values are not
    # JSON compliant") with 1 of 3 steps kept.
    config = tmp_path / "tag.json"
    config.write_text(json.dumps({"suite": "synthetic", "suite_params": {"train_size": 2000}, "steps": 3,
                                  "lr": 10, "optimizer": "adam", "affinity_every": 1, "batch_size": 64}))
    code, out, err = cli(capsys, "run", "--config", str(config), "--json")
    assert code == 0 and "Traceback" not in err, err
    result = strict_json(out)
    info = Store(store_path).get_run(1)
    assert result["status"] == info.status == "diverged"
    assert "non-finite at step 2" in info.message and info.steps_done == result["steps"] == 2
    losses = Store(store_path).scalars(1, metric="loss", split="train")
    assert sorted(set(losses["step"])) == list(range(1, info.steps_done + 1))  # every step kept
    affinity = Store(store_path).matrices(1)
    affinity = affinity[affinity["name"] == "affinity"]
    assert list(affinity["step"]) == list(range(1, info.steps_done + 1))
    last = affinity["value"].iloc[-1]
    assert not all(value == value for row in last for value in row)  # the overflow is stored as missing
    code, out, _ = cli(capsys, "list", "--json")
    assert code == 0 and strict_json(out)[0]["status"] == "diverged"
    code, out, _ = cli(capsys, "export", "1", "--csv")
    assert code == 0 and out.count("\n") > 1


def test_json_output_writes_null_for_non_finite_values_at_any_depth():
    row = {"a": float("nan"), "b": [1.0, float("inf"), (float("-inf"), 2)], "c": {"d": [float("nan")]}}
    assert _finite(row) == {"a": None, "b": [1.0, None, [None, 2]], "c": {"d": [None]}}
    strict_json(json.dumps(_finite(row), allow_nan=False))


# --- 2. hostile config files ----------------------------------------------------------------------

def test_a_deeply_nested_config_file_is_one_line_not_a_recursion_error(store_path, tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 30_000 + "]" * 30_000)  # under the size limit, far over Python's recursion limit
    code, out, err = cli(capsys, "run", "--config", str(deep))
    one_line_error(code, out, err)
    assert "nests more than" in err and not store_path.exists()


def test_a_huge_config_file_is_refused_by_its_size_before_it_is_read(store_path, tmp_path, capsys, monkeypatch):
    huge = tmp_path / "huge.json"
    with huge.open("wb") as file:
        file.truncate(10**9)  # sparse: 1 GB on paper, no disk used
    opened = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: opened.append(self) or real_open(self, *a, **k))
    code, out, err = cli(capsys, "run", "--config", str(huge))
    one_line_error(code, out, err)
    assert "1,000,000,000 bytes" in err and "at most 64 KiB" in err
    assert huge not in opened and not store_path.exists()


# --- 3. threads -----------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", ["0", "100000", str(MAX_THREADS + 1)])
def test_an_absurd_thread_count_is_refused_before_anything_is_stored(store_path, capsys, threads):
    code, out, err = cli(capsys, "run", *SMALL, "--steps", "2", "--threads", threads)
    one_line_error(code, out, err)
    assert f"--threads must be between 1 and {MAX_THREADS}" in err and not store_path.exists()


# --- 4. signals -----------------------------------------------------------------------------------

def _start(tmp_path: Path, *argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MTL_TORCH_THREADS": "1"}
    env.pop("MTL_STORE", None)
    return subprocess.Popen([sys.executable, "-m", "mtl_core", *argv, "--store", str(tmp_path / "mtl.db")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the command ended before {what}: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.05)


def _steps_stored(path: Path, run_id: int) -> int:
    if not path.exists():
        return 0
    try:
        return Store(path).last_step(run_id)
    except Exception:  # the store is being created by the other process
        return 0


def test_sigterm_interrupts_a_cli_run_keeps_its_steps_and_exits_143(tmp_path):
    path = tmp_path / "mtl.db"
    process = _start(tmp_path, "run", *SMALL, "--steps", "1000000")
    _wait_for(lambda: _steps_stored(path, 1) >= 1, process, "a stored step")
    assert Store(path).get_run(1).pid == process.pid  # the CLI's own pid is on its run
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    info = Store(path).get_run(1)
    assert info.status == "interrupted" and info.message.startswith("interrupted by SIGTERM")
    assert info.steps_done >= 1
    assert Store(path).scalars(1, metric="loss")["step"].max() == info.steps_done


def test_sigterm_interrupts_a_cli_sweep_marks_running_and_queued_runs_and_exits_143(tmp_path):
    path = tmp_path / "mtl.db"
    process = _start(tmp_path, "sweep", *SMALL, "--methods", "ew", "--seeds", "0,1,2", "--workers", "1",
                     "--steps", "1000000", "--no-baselines")
    _wait_for(lambda: any(_steps_stored(path, run_id) >= 1 for run_id in (1, 2, 3)), process, "a stored step")
    queued = [info for info in map(Store(path).get_run, (1, 2, 3)) if info.status == "queued"]
    assert queued and all(info.pid == process.pid for info in queued)  # the sweep's pid is on its queued runs
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("sweep interrupted")
    runs = [Store(path).get_run(run_id) for run_id in (1, 2, 3)]
    assert [info.status for info in runs] == ["interrupted"] * 3
    trained = [info for info in runs if info.steps_done > 0]
    assert len(trained) == 1
    assert Store(path).scalars(trained[0].id, metric="loss")["step"].max() == trained[0].steps_done


def test_after_sigkill_list_shows_the_run_interrupted(tmp_path, capsys):
    # SIGKILL cannot be caught: the run stays `running` in the file, with the dead CLI's pid on it,
    # and every reader shows a live run whose process is gone as interrupted.
    path = tmp_path / "mtl.db"
    process = _start(tmp_path, "run", *SMALL, "--steps", "1000000")
    _wait_for(lambda: _steps_stored(path, 1) >= 1, process, "a stored step")
    process.kill()
    process.communicate(timeout=30)
    code, out, _ = cli(capsys, "list", "--json", "--store", str(path))
    row = strict_json(out)[0]
    assert code == 0 and row["status"] == "interrupted" and row["steps_done"] >= 1


# --- 6. reading a store that is not there ---------------------------------------------------------

@pytest.mark.parametrize("command", [["list"], ["list", "--json"], ["export", "1", "--csv"]])
def test_reading_a_missing_store_creates_nothing(tmp_path, capsys, command):
    path = tmp_path / "no" / "such" / "mtl.db"
    code, out, err = cli(capsys, *command, "--store", str(path))
    one_line_error(code, out, err)
    assert "There is no run store at" in err and not (tmp_path / "no").exists()


# --- 7. run names ---------------------------------------------------------------------------------

def test_a_name_too_long_is_refused_by_the_cli_and_the_store(store_path, capsys):
    code, out, err = cli(capsys, "run", *SMALL, "--steps", "2", "--name", "x" * (MAX_NAME_CHARS + 1))
    one_line_error(code, out, err)
    assert f"at most {MAX_NAME_CHARS}" in err and not store_path.exists()
    store = Store(store_path)
    with pytest.raises(ValueError, match=f"at most {MAX_NAME_CHARS} characters"):
        store.create_run(RunConfig(), name="y" * (MAX_NAME_CHARS + 1))
    run_id = store.create_run(RunConfig(), name="z" * MAX_NAME_CHARS)
    with pytest.raises(ValueError, match=f"at most {MAX_NAME_CHARS} characters"):
        store.rename(run_id, "y" * 10_000)
    for control in ("\tx", "\rx", "a\nb", "a\x00b"):  # a line break split a CSV row
        with pytest.raises(ValueError, match="one line of printable text"):
            store.rename(run_id, control)
    assert store.get_run(run_id).name == "z" * MAX_NAME_CHARS


FORMULAS = ['=HYPERLINK("http://evil","x")', "+1+1", "-2+3", "@SUM(A1)"]


def test_a_name_that_starts_a_formula_is_escaped_in_the_exported_csv(store_path, capsys):
    code, _, err = cli(capsys, "run", *SMALL, "--steps", "2", "--eval-every", "1", "--name", FORMULAS[0])
    assert code == 0, err
    for name in FORMULAS:
        Store(store_path).rename(1, name)
        code, out, _ = cli(capsys, "export", "1", "--csv")
        table = pd.read_csv(io.StringIO(out), keep_default_na=False)
        assert code == 0 and set(table["run_name"]) == {"'" + name}  # text to a spreadsheet, never run
        assert table["value"].dtype.kind == "f"  # numbers stay numbers (a negative weight keeps its sign)


def test_spreadsheet_safe_leaves_plain_text_and_numbers_alone():
    assert spreadsheet_safe("ew · hps") == "ew · hps" and spreadsheet_safe(-1.5) == -1.5
    assert spreadsheet_safe("-x") == "'-x" and spreadsheet_safe("") == ""
    assert spreadsheet_safe("\tx") == "'\tx" and spreadsheet_safe("\r=1") == "'\r=1"  # names stored before the check


# --- 8. the upload limit --------------------------------------------------------------------------

def test_the_server_refuses_uploads_over_the_table_limit_and_configs_over_one_megabyte():
    # The served app (benchmarks/served_app.py, `serve`) runs streamlit from the project's root,
    # where .streamlit/config.toml sets the limit; Streamlit's default is 200 MB.
    code = ("from streamlit import config; config.get_config_options(force_reparse=True); "
            "print(config.get_option('server.maxUploadSize'))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    from mtl_core.suites.user_tables import LIMITS
    from pages._share import UPLOAD_LIMIT_MB  # the config uploader's own limit
    from pages._table import UPLOAD_LIMIT_MB as TABLE_LIMIT_MB

    assert done.stdout.strip() == str(TABLE_LIMIT_MB) == "10", done.stderr
    assert LIMITS.max_bytes == TABLE_LIMIT_MB * 1024 * 1024 and UPLOAD_LIMIT_MB == 1


# --- 9. the server's settings ---------------------------------------------------------------------

def test_every_mtl_variable_the_code_reads_is_in_the_settings_registry():
    import re

    read = set()
    for folder in ("mtl_core", "pages"):
        for path in (ROOT / folder).rglob("*.py"):
            read |= set(re.findall(r"\"(MTL_[A-Z_]+)\"", path.read_text()))
    read.discard("MTL_")
    assert read <= {setting.name for setting in settings.SETTINGS}, read


@pytest.mark.parametrize(("name", "value", "says"), [
    ("MTL_MAX_RUNS", "abc", "must be a whole number"),
    ("MTL_MAX_RUNS", "0", "between 1 and"),
    ("MTL_MAX_QUEUED_PER_SESSION", "-3", "must be in [1, 10,000]"),
    ("MTL_MAX_STEPS", "2000000", "must be in [1, 1,000,000]"),
    ("MTL_TORCH_THREADS", "100000", "between 1 and"),
    ("MTL_MAX_QUEUED", "1.5", "must be a whole number"),
    ("MTL_STORE_LOCK_WAIT_S", "nan", "finite number of seconds"),
    ("MTL_MAX_RUN_MEMORY", "lots", "must be a size in bytes"),
    ("MTL_MAX_RUN_SECONDS", "1.5", "must be a whole number"),
    ("MTL_MAX_LAB_SECONDS", "soon", "number of seconds"),
    ("MTL_SECRET", "short", "at least 16 characters"),
    ("MTL_LECTURER_KEY", "abc", "at least 8 characters"),
])
def test_a_bad_setting_is_one_sentence_naming_it(tmp_path, name, value, says):
    found = settings.problems({name: value})
    assert len(found) == 1 and found[0].startswith(f"The setting {name} ") and says in found[0], found
    assert found[0].endswith(".") and found[0].count(". ") == 0


def test_good_and_unset_settings_are_fine(tmp_path):
    good = {"MTL_STORE": str(tmp_path / "mtl.db"), "MTL_MAX_RUNS": "2", "MTL_MAX_QUEUED_PER_SESSION": "12",
            "MTL_MAX_STEPS": "200000", "MTL_TORCH_THREADS": "1", "MTL_MAX_QUEUED": "40",
            "MTL_STORE_LOCK_WAIT_S": "2.5", "MTL_MAX_RUN_MEMORY": "2GiB", "MTL_MAX_RUN_SECONDS": "600",
            "MTL_MAX_LAB_SECONDS": "30", "MTL_SECRET": "s" * 32, "MTL_LECTURER_KEY": "lecturer-key",
            "MTL_MAX_RUNS_EXTRA": "not ours"}
    assert settings.problems(good) == [] and settings.problems({"MTL_MAX_RUNS": " "}) == []
    assert settings.problems({"MTL_STORE": str(tmp_path)})  # a folder is not a store file


def test_serve_refuses_to_start_on_a_bad_setting(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MTL_MAX_RUNS": "abc", "MTL_MAX_STEPS": "x"}
    done = subprocess.run([sys.executable, "-m", "mtl_core", "serve", "--server.port", "1"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: The setting MTL_MAX_RUNS must be a whole number (got 'abc')")
    assert "1 more setting to fix" in done.stderr


def test_the_app_started_directly_with_a_bad_setting_shows_the_sentence_on_every_page(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MTL_STORE", str(tmp_path / "mtl.db"))
    monkeypatch.setenv("MTL_MAX_RUNS", "abc")
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    assert not app.exception
    assert [error.value for error in app.error] == [settings.problems()[0]]


# --- 10. the exact command line -------------------------------------------------------------------

EVERY_FIELD = RunConfig.parse({
    "suite": "synthetic", "suite_params": {"correlation": 0.25, "train_size": 3000}, "tasks": ["y2"],
    "arch": "mmoe", "arch_params": {"experts": 3}, "method": "cagrad", "method_params": {"c": 0.2},
    "optimizer": "sgd", "lr": 0.0123, "batch_size": 17, "steps": 33, "eval_every": 7, "probe_every": 3,
    "snapshot_every": 5, "affinity_every": 4, "seed": 9, "device": "cpu"})


def test_every_setting_has_a_flag_and_differs_from_its_default_in_the_example():
    groups = {"suite_params", "arch_params", "method_params"}
    assert set(RunConfig.model_fields) - groups == set(_FLAGS)
    default = RunConfig()
    assert all(getattr(EVERY_FIELD, name) != getattr(default, name) for name in RunConfig.model_fields)


@pytest.mark.parametrize("config", [EVERY_FIELD, RunConfig()], ids=["every-field", "defaults"])
def test_the_command_line_gives_back_the_same_config(config):
    assert "--affinity-every" in cli_line(config)
    args = build_parser().parse_args(["run", *config_args(config)])
    assert config_from_args(args) == config
