"""A person's own table (mtl_core.suites.user_tables), torch-free: reading a CSV and every refusal
as one sentence, inferring the columns' kinds, the checks before training, content-addressed
storage beside the run store, and resolving "table-<hash>" suites in this and in a fresh process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtl_core.config import ConfigError, RunConfig
from mtl_core.registry import SuiteInfo
from mtl_core.suites import SUITES, user_tables
from mtl_core.suites.user_tables import (
    LIMITS,
    TableError,
    TableLimits,
    TableSpec,
    column_kinds,
    default_inputs,
    find_table,
    inspect_columns,
    prepare,
    read_table,
    store_table,
    tables_root,
    task_names,
)

ROOT = Path(__file__).resolve().parent.parent


def tiny_csv(rows: int = 40, *, extra: str = "") -> bytes:
    """A small table with every kind of column: text classes, whole-number classes, measurements,
    an id; values follow the row number so that each run of the test sees the same file."""
    lines = ["Colour,Size (cm),Weight,Grade,Price €,id" + (",note" if extra else "")]
    for i in range(rows):
        colour = ("red", "green", "blue")[i % 3]
        cells = [colour, f"{10 + (i * 7) % 13 + 0.5 * (i % 2):.1f}", f"{2.5 + (i * 11) % 17 / 4:.2f}",
                 str(1 + i % 3), f"{100 + (i * 37) % 91 + 0.25:.2f}", f"r{i}"]
        if extra:
            cells.append(extra if i == 7 else "x")
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()


def spec_for(raw: bytes, targets, **kwargs) -> TableSpec:
    return TableSpec.for_bytes(raw, "shop.csv", targets=targets, **kwargs)


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


# --- reading ------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, says", [
    (b"", "shop.csv is empty."),
    (b"\n\n  \n", "shop.csv is empty."),
    (b"PK\x03\x04\x14\x00\x06\x00", "is a ZIP archive or an Excel workbook, not a CSV file"),
    (b"a,b\x00,c\n1,2,3\n", "is not a CSV file (it holds binary data)"),
    ("a,b,c\n1,2,\u00e9\n".encode("latin-1"), "is not UTF-8 text (byte 11 is not)"),
    (b"just one column\n1\n2\n", "has a single column"),
    (b"a,b,c\n1,2,3\n4,5,6,7\n", "could not be read as CSV: line 3 has 4 fields where the header has 3"),
    (b'a,b,c\n1,"2,3\n', "could not be read as CSV: a quotation mark is never closed"),
    (b"a,b,c\n", "shop.csv has a header but no rows."),
])
def test_what_is_not_a_table_is_refused_in_one_sentence(raw, says):
    with pytest.raises(TableError) as error:
        read_table(raw, "/home/someone/shop.csv")
    assert says in str(error.value)
    assert "\n" not in str(error.value) and "/home/someone" not in str(error.value)


def test_the_limits_on_bytes_rows_and_columns(monkeypatch):
    monkeypatch.setattr(user_tables, "LIMITS", TableLimits(max_bytes=200, max_rows=5, max_columns=3))
    with pytest.raises(TableError, match=r"^big.csv is 0.0 MB; a table may be at most 0 MB.$"):
        read_table(b"a,b\n" + b"1,2\n" * 60, "big.csv")
    with pytest.raises(TableError, match=r"^t.csv has more than 5 rows; a table may have at most 5.$"):
        read_table(b"a,b\n" + b"1,2\n" * 6, "t.csv")
    with pytest.raises(TableError, match=r"^t.csv has 4 columns; a table may have at most 3.$"):
        read_table(b"a,b,c,d\n1,2,3,4\n", "t.csv")
    assert len(read_table(b"a,b\n" + b"1,2\n" * 5, "t.csv")) == 5
    assert "10 MB" in LIMITS.describe() and "100,000 rows" in LIMITS.describe() and "50 classes" in LIMITS.describe()


def test_semicolons_tabs_and_a_byte_order_mark_are_read():
    assert list(read_table(b"\xef\xbb\xbfa;b;c\n1;2;3\n", "x.csv").columns) == ["a", "b", "c"]
    assert read_table(b"a\tb\n1\t2\n", "x.csv").shape == (1, 2)


# --- columns -------------------------------------------------------------------------------------

def test_kinds_are_inferred_and_unusable_columns_say_why():
    frame = read_table(tiny_csv(), "shop.csv")
    frame["empty"] = np.nan
    frame["same"] = "yes"
    frame["row"] = np.arange(1, 41)
    frame["many"] = np.arange(40) % 25  # whole numbers, 25 values: a measurement
    assert column_kinds(frame) == {
        "Colour": "classification", "Size (cm)": "regression", "Weight": "regression",
        "Grade": "classification", "Price €": "regression", "id": None, "empty": None, "same": None,
        "row": None, "many": "regression"}
    info = inspect_columns(frame)
    assert info["id"].reason == "Column 'id' holds a different text in every row (an id or a name?): it cannot be a class."
    assert info["empty"].reason == "Column 'empty' is empty (every value is missing)."
    assert info["same"].reason.startswith("Column 'same' holds the same value ('yes') in every row")
    assert info["row"].reason.startswith("Column 'row' counts the rows (1, 2, …)")
    assert info["Grade"].numeric and not info["Colour"].numeric and info["Colour"].distinct == 3
    assert default_inputs(frame, ["Colour", "Grade"]) == ["Size (cm)", "Weight", "Price €", "many"]


def test_text_in_a_mostly_numeric_column_names_the_column_row_and_value():
    frame = read_table(tiny_csv(), "shop.csv")
    frame["Weight"] = frame["Weight"].astype(str)
    frame.loc[7, "Weight"] = "2,5kg"
    reason = inspect_columns(frame)["Weight"].reason
    assert reason == "Column 'Weight' holds numbers, but data row 8 holds '2,5kg': correct or empty that cell."
    for targets, inputs in ((["Colour", "Weight"], ()), (["Colour", "Grade"], ("Weight",))):
        with pytest.raises(TableError) as error:
            prepare(frame, spec_for(b"", targets, inputs=inputs))
        assert str(error.value) == reason
    # not chosen: the other columns train without it
    assert "Weight" not in prepare(frame, spec_for(b"", ["Colour", "Grade"])).spec.inputs


def test_too_many_different_texts_cannot_be_classes():
    rows = "\n".join(f"c{i % 60},{i % 7},{i * 0.5}" for i in range(240))
    frame = read_table(f"kind,a,b\n{rows}\n".encode(), "x.csv")
    assert inspect_columns(frame)["kind"].reason == (
        "Column 'kind' holds 60 different texts; a column of classes may have at most 50.")


def test_task_names_are_sanitised_unique_and_never_empty():
    assert task_names(["Body Mass (g)", "body-mass-g", "Größe", "!!!", "", "2nd"]) == [
        "body_mass_g", "body_mass_g_2", "groe", "column", "column_2", "2nd"]


# --- what would be trained -----------------------------------------------------------------------

def test_prepare_resolves_the_spec_encodes_classes_and_keeps_the_labels():
    raw = tiny_csv()
    table = prepare(read_table(raw, "shop.csv"), spec_for(raw, ["Price €", "Colour", "Grade"]))
    # resolved: the table's column order, inputs filled in, a kind for every target
    assert table.spec.targets == ("Colour", "Grade", "Price €")
    assert table.spec.inputs == ("Size (cm)", "Weight")
    assert table.spec.kind_of == {"Colour": "classification", "Grade": "classification", "Price €": "regression"}
    assert [(t.name, t.column, t.kind, t.classes) for t in table.tasks] == [
        ("colour", "Colour", "classification", ("blue", "green", "red")),
        ("grade", "Grade", "classification", ("1", "2", "3")),
        ("price", "Price €", "regression", ())]
    assert table.features == ("Size (cm)", "Weight") and table.x_train.shape == (31, 2)  # 9 held out: 3 per colour
    assert table.stratified_by == "colour" and table.rows_used == 40 and table.warnings == ()
    colours = read_table(raw, "x.csv")["Colour"].to_numpy()
    assert all(("blue", "green", "red")[index] == colours[row]
               for index, row in zip(table.y_train["colour"], table.train_rows, strict=True))


def test_kinds_can_be_overridden_and_classes_sort_by_value():
    raw = b"n,w,x\n" + b"".join(f"{(2, 10, 30)[i % 3]},{i % 4 + 0.5},{i * 1.5}\n".encode() for i in range(30))
    frame = read_table(raw, "x.csv")
    assert column_kinds(frame)["n"] == "classification"
    table = prepare(frame, spec_for(raw, ["n", "w"], inputs=["x"], kinds={"w": "classification"}))
    assert table.task("n").classes == ("2", "10", "30")  # numbers in numeric order, not "10" < "2"
    assert table.task("w").classes == ("0.5", "1.5", "2.5", "3.5")
    table = prepare(frame, spec_for(raw, ["n", "w"], inputs=["x"], kinds={"n": "regression"}))
    assert table.task("n").kind == "regression" and table.task("n").mean > 2


def test_inputs_are_standardised_on_the_training_rows_and_text_inputs_become_one_hot():
    raw = tiny_csv()
    table = prepare(read_table(raw, "x.csv"), spec_for(raw, ["Grade", "Price €"], inputs=["Colour", "Weight"]))
    assert table.features == ("Colour=blue", "Colour=green", "Colour=red", "Weight")
    np.testing.assert_allclose(table.x_train.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(table.x_train.std(axis=0), 1, atol=1e-5)
    weights = read_table(raw, "x.csv")["Weight"].to_numpy()
    expected = (weights[table.val_rows] - weights[table.train_rows].mean()) / weights[table.train_rows].std()
    np.testing.assert_allclose(table.x_val[:, 3], expected, rtol=1e-5, atol=1e-6)
    prices = read_table(raw, "x.csv")["Price €"].to_numpy()
    np.testing.assert_allclose(table.y_val["price"], prices[table.val_rows] - table.task("price").mean,
                               rtol=1e-5, atol=1e-4)
    assert abs(float(table.y_train["price"].mean())) < 1e-4
    assert not table.x_train.flags.writeable and not table.y_train["grade"].flags.writeable


def test_rows_with_missing_values_are_left_out_with_a_warning():
    lines = tiny_csv(40).decode().splitlines()
    for row in (3, 9, 15):
        cells = lines[row].split(",")
        cells[2] = ""
        lines[row] = ",".join(cells)
    raw = ("\n".join(lines) + "\n").encode()
    table = prepare(read_table(raw, "x.csv"), spec_for(raw, ["Colour", "Price €"]))
    assert table.rows_used == 37 and table.rows_dropped == 3
    assert table.warnings == ("3 of 40 rows have a missing value in a chosen column (most in 'Weight') and are "
                              "left out.",)
    assert not {2, 8, 14} & {*table.train_rows, *table.val_rows}
    # unchosen, the column costs no rows
    assert prepare(read_table(raw, "x.csv"), spec_for(raw, ["Colour", "Price €"], inputs=["Size (cm)"])).rows_used == 40


def test_the_split_is_seeded_disjoint_and_stratified():
    raw = tiny_csv(60)
    first = prepare(read_table(raw, "x.csv"), spec_for(raw, ["Colour", "Price €"]))
    again = prepare(read_table(raw, "x.csv"), spec_for(raw, ["Colour", "Price €"]))
    assert np.array_equal(first.val_rows, again.val_rows)
    assert not set(first.train_rows) & set(first.val_rows)
    assert sorted({*first.train_rows, *first.val_rows}) == list(range(60))
    assert np.bincount(first.y_val["colour"]).tolist() == [4, 4, 4]  # 20% of each colour's 20 rows


def bad_table_cases():
    raw = tiny_csv()
    text = raw.decode()
    one_class = text.replace("green", "red").replace("blue", "red")
    lines = text.splitlines()
    for row in range(16, len(lines)):  # Weight empty from the 16th row on: 15 complete rows
        cells = lines[row].split(",")
        cells[2] = ""
        lines[row] = ",".join(cells)
    sparse = "\n".join(lines) + "\n"
    many = "a,b,c\n" + "\n".join(f"{i * 0.3},{i % 3},{i * 0.7}" for i in range(80)) + "\n"
    return [
        (raw, dict(targets=["Colour"]), "Choose at least two target columns: multi-task learning needs two tasks "
                                        "or more (got 1)."),
        (raw, dict(targets=["Colour", "Grade"], inputs=["Colour"]),
         "Column 'Colour' is chosen both as an input and as a target: a task cannot learn from its own answer."),
        (raw, dict(targets=["Colour", "Grade", "Size (cm)", "Weight", "Price €"]),
         "No column is left to learn from: every other column is a target or unusable; keep at least one usable "
         "column as an input."),
        (raw, dict(targets=["Colour", "Nope"]), "The table has no column 'Nope' (its columns: Colour, Size (cm), "
                                                 "Weight, Grade, Price €, id)."),
        (raw, dict(targets=["Colour", "id"]), "Column 'id' holds a different text in every row (an id or a name?): "
                                              "it cannot be a class."),
        (raw, dict(targets=["Colour", "Grade"], inputs=["id"]), "Column 'id' holds a different text in every row"),
        (raw, dict(targets=["Colour", "Grade"], kinds={"Colour": "regression"}),
         "Column 'Colour' holds text, not numbers: it cannot be a regression target (make it a classification "
         "target)."),
        (raw, dict(targets=["Colour", "Grade"], kinds={"Grade": "ordinal"}),
         "The kind of 'Grade' must be classification or regression (got 'ordinal')."),
        (raw, dict(targets=["Colour", "Grade"], kinds={"Weight": "regression"}),
         "A kind is given for 'Weight', which is not a target."),
        (one_class.encode(), dict(targets=["Colour", "Grade"]),
         "Column 'Colour' holds the same value ('red') in every row: there is nothing to learn from it or to predict."),
        (sparse.encode(), dict(targets=["Colour", "Grade"], inputs=["Weight"]),
         "Only 15 of 40 rows have a value in every chosen column; at least 20 are needed"),
        (many.encode(), dict(targets=["b", "c"], kinds={"c": "classification"}),
         "Target 'c' has 80 classes; a classification target may have at most 50"),
    ]


@pytest.mark.parametrize("raw, choice, says", bad_table_cases())
def test_each_bad_choice_is_one_sentence_and_stores_nothing(tmp_path, raw, choice, says):
    with pytest.raises(TableError) as error:
        store_table(raw, spec_for(raw, **choice), tmp_path / "tables")
    assert says in str(error.value) and "\n" not in str(error.value)
    assert files_under(tmp_path) == []


def test_a_target_with_one_class_left_after_missing_rows_are_dropped():
    lines = ["a,b,c"] + [f"{'x' if i < 25 else 'y'},{i * 0.5},{'' if i >= 25 else i % 2}" for i in range(30)]
    raw = ("\n".join(lines) + "\n").encode()
    with pytest.raises(TableError, match=r"^Target 'a' has one class \('x'\) in the rows used: there is nothing to learn.$"):
        prepare(read_table(raw, "x.csv"), spec_for(raw, ["a", "b"], inputs=["c"]))


def test_a_spec_made_for_another_file_is_refused(tmp_path):
    spec = spec_for(tiny_csv(), ["Colour", "Grade"])
    with pytest.raises(TableError, match="made for another file"):
        store_table(tiny_csv(41), spec, tmp_path)
    assert files_under(tmp_path) == []


# --- storing ---------------------------------------------------------------------------------------

def test_storing_is_content_addressed_idempotent_and_never_touches_a_stored_file(tmp_path):
    root = tmp_path / "tables"
    raw = tiny_csv()
    spec = spec_for(raw, ["Colour", "Price €"], kinds={"Colour": "classification"})
    key = store_table(raw, spec, root)
    resolved = prepare(read_table(raw, "x.csv"), spec).spec
    canonical = json.dumps({"format": 1, "data_sha256": hashlib.sha256(raw).hexdigest(),
                            "inputs": ["Size (cm)", "Weight", "Grade"], "targets": ["Colour", "Price €"],
                            "kinds": {"Colour": "classification", "Price €": "regression"}},
                           sort_keys=True, separators=(",", ":"))
    assert resolved.canonical_json() == canonical
    assert key == "table-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]
    data = root / "data" / f"{hashlib.sha256(raw).hexdigest()}.csv"
    spec_file = root / "specs" / f"{key}.json"
    assert data.read_bytes() == raw and files_under(root) == sorted([data, spec_file])
    stats = {path: (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()) for path in (data, spec_file)}

    # the same choice again, spelled differently and under another name: the same key, nothing written
    same = TableSpec.for_bytes(raw, "renamed.csv", targets=["Price €", "Colour"],
                               inputs=["Grade", "Weight", "Size (cm)"])
    assert store_table(raw, same, root) == key
    assert {path: (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()) for path in stats} == stats
    assert json.loads(spec_file.read_text())["file_name"] == "shop.csv"

    # another choice on the same file: a new spec, the same data file
    other = store_table(raw, spec_for(raw, ["Colour", "Grade"]), root)
    assert other != key and len(files_under(root / "data")) == 1 and len(files_under(root / "specs")) == 2
    assert {path: (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()) for path in stats} == stats
    # a failing choice afterwards leaves everything as it was
    with pytest.raises(TableError):
        store_table(raw, spec_for(raw, ["Colour"]), root)
    assert len(files_under(root)) == 3 and not list(root.rglob(".incoming-*"))


def test_the_tables_folder_is_beside_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_STORE", str(tmp_path / "here" / "mtl.db"))
    assert tables_root() == tmp_path / "here" / "tables"
    assert tables_root(tmp_path / "else" / "x.db") == tmp_path / "else" / "tables"
    monkeypatch.delenv("MTL_STORE")
    monkeypatch.chdir(tmp_path)
    assert tables_root() == tmp_path / "runs" / "tables"


# --- the registry ----------------------------------------------------------------------------------

def test_a_stored_table_is_a_suite_that_configs_name_by_its_key(tmp_path):
    raw = tiny_csv()
    key = store_table(raw, spec_for(raw, ["Colour", "Grade", "Price €"]), tmp_path / "tables")
    listed = SUITES.keys()
    assert key in SUITES and key not in listed and all(entry.key != key for entry in SUITES) and len(SUITES) == len(listed)
    info = SUITES[key]
    assert isinstance(info, SuiteInfo) and info.input_kind == "vector" and info.name == "shop.csv (your table)"
    assert [(t.name, t.label, t.kind, t.n_outputs, t.metric, t.higher_is_better) for t in info.tasks] == [
        ("colour", "Colour", "classification", 3, "accuracy", True),
        ("grade", "Grade", "classification", 3, "accuracy", True),
        ("price", "Price €", "regression", 1, "mae", False)]
    assert info.default_tasks == ("colour", "grade", "price") and info.extra["small"] == {}
    assert info.extra["table"]["tasks"][0]["classes"] == ["blue", "green", "red"]
    assert info.extra["table"]["rows"] == {"total": 40, "dropped": 0, "train": 31, "validation": 9}
    config = RunConfig(suite=key, tasks=("price", "colour"))
    assert config.tasks == ("colour", "price")
    assert RunConfig.from_json(config.to_json()) == config and json.loads(config.to_json())["suite"] == key


def test_an_unknown_table_is_one_sentence_naming_the_key_the_folders_and_the_way_out(tmp_path):
    user_tables.add_search_root(tmp_path / "tables")
    key = "table-0123456789ab"
    assert key not in SUITES
    with pytest.raises(ValueError) as error:
        SUITES[key]
    message = str(error.value)
    assert message.startswith(f"No stored table '{key}': upload the CSV again on the Train page, or pass "
                              f"--data FILE (with --targets) to python -m mtl_core run (looked in "
                              f"{tmp_path / 'tables'}")
    assert message.endswith(").") and "\n" not in message
    problems = pytest.raises(ConfigError, RunConfig.parse, {"suite": key}).value.problems
    assert len(problems) == 1 and problems[0].startswith(message[:150])
    for bad in ("table-../../etc/passwd", "table-", "table-0123456789AB"):
        assert bad not in SUITES
        with pytest.raises(ValueError, match="No stored table"):
            find_table(bad)


def test_a_damaged_spec_is_refused(tmp_path):
    raw = tiny_csv()
    root = tmp_path / "tables"
    key = store_table(raw, spec_for(raw, ["Colour", "Grade"]), root)
    forged = "table-" + "f" * 12
    (root / "specs" / f"{forged}.json").write_text((root / "specs" / f"{key}.json").read_text())
    with pytest.raises(TableError, match=f"The stored spec of table {forged} at .* is damaged"):
        find_table(forged)


def test_a_fresh_process_finds_the_table_from_the_store_path_alone(tmp_path):
    raw = tiny_csv()
    store = tmp_path / "elsewhere" / "mtl.db"
    key = store_table(raw, spec_for(raw, ["Colour", "Price €"]), tables_root(store))
    code = ("import sys; from mtl_core.runs.store import Store; from mtl_core.suites import SUITES; "
            f"assert {key!r} not in SUITES; Store(sys.argv[1]); info = SUITES[{key!r}]; "
            "print(info.name, [t.name for t in info.tasks]); assert 'torch' not in sys.modules")
    env = {key: value for key, value in os.environ.items() if key != "MTL_STORE"}
    done = subprocess.run([sys.executable, "-c", code, str(store)], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "shop.csv (your table) ['colour', 'price']"
    assert tables_root(store) == user_tables.search_roots()[0]  # stored last, looked in first
