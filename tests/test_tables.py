"""The table suites (mtl_core.suites.tables): the Palmer penguins and the wines read from the
installed packages' CSVs, standardised on the training rows, split 80/20 by a fixed seed and
stratified, regression targets centred; a person's table trained from the command line, stored
beside the store, and re-run from its exported config in a fresh process to the same numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mtl_core.__main__ import main
from mtl_core.suites import SUITES, build_suite, tables
from mtl_core.suites.user_tables import VALIDATION_FRACTION

ROOT = Path(__file__).resolve().parent.parent


def penguin_csv() -> pd.DataFrame:
    return pd.read_csv(tables._package_file("palmerpenguins", "data", "penguins.csv"))


def test_penguins_leave_out_the_11_incomplete_rows_and_weigh_in_kilograms():
    suite, table = build_suite("penguins"), tables.penguins_table()
    assert suite.x_train.shape == (266, 5) and suite.x_val.shape == (67, 5)
    assert suite.x_train.dtype == torch.float32
    assert table.features == ("island=Biscoe", "island=Dream", "island=Torgersen", "bill_length_mm", "bill_depth_mm")
    assert table.rows_total == 344 and table.rows_dropped == 11
    assert [(t.name, t.classes) for t in table.tasks if t.kind == "classification"] == [
        ("species", ("Adelie", "Chinstrap", "Gentoo")), ("sex", ("female", "male"))]
    raw = penguin_csv().iloc[table.train_rows]
    body_mass = suite.y_train["body_mass"].double() + table.task("body_mass").mean
    np.testing.assert_allclose(body_mass.numpy(), raw["body_mass_g"].to_numpy() / 1000, rtol=1e-6)
    assert 4.0 < table.task("body_mass").mean < 4.4 and 195 < table.task("flipper_length").mean < 205
    assert build_suite("penguins") is suite  # cached, shared: read-only by contract


def test_wine_has_eleven_inputs_and_three_tasks_on_very_different_scales():
    suite, table = build_suite("wine"), tables.wine_table()
    assert suite.x_train.shape == (142, 11) and suite.x_val.shape == (36, 11)
    assert table.rows_dropped == 0 and table.task("cultivar").classes == ("1", "2", "3")
    assert set(table.features) == set(tables.WINE_COLUMNS) - {"cultivar", "alcohol", "proline"}
    alcohol, proline = suite.y_train["alcohol"].std().item(), suite.y_train["proline"].std().item()
    assert 0.5 < alcohol < 1.2 and 250 < proline < 400  # % vol against mg/L: losses ~10^5 apart


@pytest.mark.parametrize("key", ["penguins", "wine"])
def test_inputs_are_standardised_with_the_training_rows_only(key):
    suite = build_suite(key)
    torch.testing.assert_close(suite.x_train.mean(0), torch.zeros(suite.x_train.shape[1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(suite.x_train.std(0, unbiased=False), torch.ones(suite.x_train.shape[1]),
                               atol=1e-5, rtol=0)
    assert not torch.allclose(suite.x_val.mean(0), torch.zeros(suite.x_val.shape[1]), atol=1e-3)
    if key == "penguins":  # by hand, from the file: bill length standardised by the training penguins
        table, raw = tables.penguins_table(), penguin_csv()["bill_length_mm"].to_numpy()
        mean, std = raw[table.train_rows].mean(), raw[table.train_rows].std()
        np.testing.assert_allclose(suite.x_val[:, 3].numpy(), (raw[table.val_rows] - mean) / std, rtol=1e-5)


@pytest.mark.parametrize("key, stratify", [("penguins", "species"), ("wine", "cultivar")])
def test_the_split_is_fixed_disjoint_and_stratified_and_regression_targets_centred(key, stratify):
    table = tables.penguins_table() if key == "penguins" else tables.wine_table()
    suite = build_suite(key)
    assert table.stratified_by == stratify
    assert not set(table.train_rows) & set(table.val_rows)
    assert len(table.train_rows) + len(table.val_rows) == table.rows_used
    whole = torch.cat([suite.y_train[stratify], suite.y_val[stratify]])
    for label in range(SUITES[key].task(stratify).n_outputs):
        assert (suite.y_val[stratify] == label).sum() == round(int((whole == label).sum()) * VALIDATION_FRACTION)
    for task in SUITES[key].tasks:
        if task.kind == "regression":
            assert abs(suite.y_train[task.name].double().mean().item()) < 1e-3 * table.task(task.name).mean
    # the split is DATA_SEED's, not the run's: built again from scratch, the same rows
    rebuilt = (tables.penguins_table if key == "penguins" else tables.wine_table).__wrapped__()
    assert np.array_equal(rebuilt.val_rows, table.val_rows) and np.array_equal(rebuilt.x_train, table.x_train)


# --- a person's table, from the command line --------------------------------------------------------

def shop_csv(path: Path) -> Path:
    rows = ["colour,size,weight,grade,price"]
    for i in range(60):
        rows.append(f"{('red', 'green', 'blue')[i % 3]},{10 + (i * 7) % 13:.1f},{2.5 + (i * 11) % 17 / 4:.2f},"
                    f"{1 + (i * 5) % 3},{100 + (i * 37) % 91 + (i % 3) * 20:.2f}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_table_trains_from_the_command_line_and_its_exported_config_reruns_it_exactly(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MTL_STORE", str(tmp_path / "not-this-one.db"))
    store = tmp_path / "class" / "mtl.db"
    data = shop_csv(tmp_path / "shop.csv")
    argv = ["run", "--data", str(data), "--targets", "colour,price,grade", "--inputs", "size,weight",
            "--kinds", "grade=classification", "--steps", "15", "--eval-every", "5", "--batch-size", "16",
            "--store", str(store), "--json", "--threads", "1"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    first = json.loads(out)
    assert set(first["metrics"]) == {"colour", "price", "grade"} and "mae" in first["metrics"]["price"]
    key = next(line.split()[1].rstrip(":") for line in err.splitlines() if line.startswith("table "))
    assert sorted(p.name for p in (store.parent / "tables").rglob("*")) == sorted(
        ["data", "specs", f"{key}.json", next((store.parent / "tables" / "data").iterdir()).name])
    assert main(["export", str(first["run_id"]), "--config", "--store", str(store), "--out", "run.json"]) == 0
    exported = json.loads(Path("run.json").read_text())
    assert exported["suite"] == key
    capsys.readouterr()

    # a fresh process that knows only the store: the table resolves beside it, the numbers repeat
    env = {k: v for k, v in os.environ.items() if k != "MTL_STORE"}
    done = subprocess.run([sys.executable, "-m", "mtl_core", "run", "--config", "run.json", "--store", str(store),
                           "--json", "--threads", "1"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    again = json.loads(done.stdout)
    assert again["run_id"] == first["run_id"] + 1 and again["metrics"] == first["metrics"]
    assert not (tmp_path / "not-this-one.db").exists() and not (tmp_path / "tables").exists()


@pytest.mark.parametrize("extra, says", [
    (["--targets", "colour"], "error: Choose at least two target columns"),
    (["--targets", "colour,price", "--kinds", "colour=regression"],
     "error: Column 'colour' holds text, not numbers: it cannot be a regression target"),
    (["--targets", "colour,nope"], "error: The table has no column 'nope'"),
    (["--targets", "colour,price", "--kinds", "colour"], "error: --kinds must look like column=classification"),
    (["--suite", "wine", "--targets", "colour,price"], "error: --data and --suite both name the data"),
    ([], "error: --data needs --targets"),
])
def test_a_bad_table_on_the_command_line_is_one_line_exit_2_and_stores_nothing(tmp_path, capsys, extra, says):
    data = shop_csv(tmp_path / "shop.csv")
    store = tmp_path / "s" / "mtl.db"
    assert main(["run", "--data", str(data), *extra, "--store", str(store)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(says) and err.count("\n") == 1
    assert not store.parent.exists()


def test_table_flags_without_data_and_a_binary_file_are_refused(tmp_path, capsys):
    assert main(["run", "--suite", "wine", "--targets", "a,b", "--store", str(tmp_path / "m.db")]) == 2
    assert "give --data too" in capsys.readouterr().err
    (tmp_path / "x.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert main(["run", "--data", str(tmp_path / "x.csv"), "--targets", "a,b", "--store", str(tmp_path / "m.db")]) == 2
    assert capsys.readouterr().err == "error: x.csv is not a CSV file (it holds binary data): save the table as CSV (UTF-8).\n"
    assert list(tmp_path.iterdir()) == [tmp_path / "x.csv"]
