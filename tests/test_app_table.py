"""Your own table on the Train page (AppTest): upload a CSV, see how its columns read, pick the
targets, use it, train on it; a bad file is one sentence and stores nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from mtl_core.runs.store import Store
from mtl_core.suites import SUITES
from mtl_core.suites import user_tables as tables
from tests.test_app_train import control, new_app, wait_until_finished


def animals_csv(rows: int = 120) -> bytes:
    """A small table with a text class, a numeric class, a measurement, an id and a blank cell."""
    rng = np.random.default_rng(0)
    length = rng.normal(50, 10, rows).round(1)
    frame = pd.DataFrame({
        "id": [f"a{i}" for i in range(rows)],
        "kind": np.where(length > 50, "big", "small"),
        "legs": rng.choice([2, 4], rows),
        "length_cm": length,
        "mass_kg": (length * 0.3 + rng.normal(0, 1, rows)).round(2),
    })
    frame.loc[3, "mass_kg"] = np.nan
    return frame.to_csv(index=False).encode()


def upload(at: AppTest, raw: bytes, name: str = "animals.csv") -> AppTest:
    control(at, "train.suite").set_value("own-table").run()
    at.file_uploader(key="train.table.file").set_value((name, raw, "text/csv")).run()
    assert not at.exception
    return at


def table_files(store_path) -> list:
    root = tables.tables_root(store_path)
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_an_uploaded_table_is_read_chosen_stored_and_trained_on(mtl_store):
    at = upload(new_app().run(), animals_csv())
    reads = at.dataframe[1].value.set_index("column")["reads as"].to_dict()
    assert reads == {"id": "not usable", "kind": "classes", "legs": "classes", "length_cm": "a number",
                     "mass_kg": "a number"}
    assert any(b.label == "Train" and b.disabled for b in at.button)  # not before it is used
    at.multiselect(key=next(m.key for m in at.multiselect if m.key.endswith(".targets"))) \
        .set_value(["kind", "mass_kg"]).run()
    inputs = next(m for m in at.multiselect if m.key.endswith(".inputs"))
    assert inputs.value == ["legs", "length_cm"]  # every other usable column
    assert any("1 of 120 rows" in w.value and "left out" in w.value for w in at.warning), [w.value for w in at.warning]
    assert any("Tasks: **kind** (classification, 2 classes), **mass_kg** (regression)" in m.value
               for m in at.markdown)
    assert table_files(mtl_store) == []  # nothing stored before "Use this table"

    next(b for b in at.button if b.label == "Use this table").click().run()
    assert not at.exception
    key = control(at, "train.suite").value
    assert tables.KEY_PATTERN.fullmatch(key) and SUITES[key].task_names == ("kind", "mass_kg")
    assert len(table_files(mtl_store)) == 2  # the bytes and the spec
    assert control(at, f"train.tasks.{key}").value == ["kind", "mass_kg"]

    control(at, "train.steps").set_value(30).run()
    next(b for b in at.button if b.label == "Train").click().run()
    assert not at.exception
    run_id = int(at.query_params["run"])
    store = Store(mtl_store)
    assert wait_until_finished(store, run_id) == "done"
    at.run()
    assert {m.label: m.value for m in at.metric}["Steps"] == "30 / 30"
    assert store.get_run(run_id).config.suite == key  # the config names the data by its hash

    # "Compare methods on this set-up" opens Compare on the same table
    compare = AppTest.from_file("../app.py", default_timeout=60).switch_page("pages/compare.py")
    compare.query_params.update(store.get_run(run_id).config.to_query())
    compare.run()
    assert not compare.exception
    assert compare.selectbox(key="compare.suite").value == key


@pytest.mark.parametrize(("raw", "says"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary data"),
    (b"only_one_column\n1\n2\n", "column"),
    (b"a,b,c\n", "no rows"),
])
def test_a_file_that_is_no_table_is_one_sentence_and_stores_nothing(mtl_store, raw, says):
    at = upload(new_app().run(), raw, name="bad.csv")
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and says in errors[0].lower(), errors
    assert "\n" not in errors[0] and "Traceback" not in errors[0]
    assert table_files(mtl_store) == []


def test_a_target_with_one_class_is_refused_in_one_sentence(mtl_store):
    raw = b"x,same,y\n" + b"".join(f"{i},1,{i % 3}\n".encode() for i in range(40))
    at = upload(new_app().run(), raw)
    reads = at.dataframe[1].value.set_index("column")["reads as"].to_dict()
    assert reads["same"] == "not usable"  # one value throughout: it cannot be chosen
    targets = next(m for m in at.multiselect if m.key.endswith(".targets"))
    assert "same" not in targets.options
