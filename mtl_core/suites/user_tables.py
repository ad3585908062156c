"""Your own table: a CSV file a person uploads (or passes to ``python -m mtl_core run --data``)
becomes a suite, ``"table-<hash>"``, that trains, re-runs and compares like a built-in one.

Torch-free: a page that only inspects a file pays for pandas, not for torch. The public API, in
the order a page or the command line calls it::

    frame = read_table(raw, "penguins.csv")            # TableError: not a CSV, too large, empty
    columns = inspect_columns(frame)                   # column -> ColumnInfo (kind, reason, counts)
    kinds = column_kinds(frame)                        # column -> "classification" | "regression" | None
    inputs = default_inputs(frame, targets)            # every other usable column
    spec = TableSpec.for_bytes(raw, "penguins.csv", targets=("species", "body_mass_g"),
                               kinds={"species": "classification"})   # inputs=(): the defaults
    table = prepare(frame, spec)                       # TableError, or what would be trained:
    table.tasks, table.features, table.rows_used, table.warnings
    key = store_table(raw, spec, tables_root(store.path))   # "table-<12 hex>"
    SUITES[key]                                        # its SuiteInfo, in any process that trains

Every refusal is a :class:`TableError` (a ValueError) holding one sentence for a person. The
limits (:data:`LIMITS`, which the page states): 10 MB, 100,000 rows, 200 columns, 50 classes per
classification target, and at least 20 rows with a value in every chosen column.

**Columns.** Text is a class label; whole numbers with at most 20 different values are class
labels too; other numbers are measurements (regression). Unusable, with a reason: a column with
every value missing, one value throughout, a different text in every row (an id or a name), more
than 50 different texts, whole numbers counting the rows (an index), an infinite number, or text
in a mostly numeric column (the reason names the row and the value). A target's kind may be
overridden; an input's is not needed: a numeric input is one standardised number, a text input
one 0/1 column per value.

**What is trained.** Rows with a missing value in a chosen column are left out (a warning says
how many). Class labels become indices in sorted order (numbers by value), the names kept for the
page. The rows are split 80/20 into training and validation, seeded by :data:`DATA_SEED` (not the
run's seed: every run sees the same rows), stratified by the first classification target. Inputs
are standardised with the training rows' mean and standard deviation; regression targets keep
their units, centred on the training rows' mean (an untrained head starts at the mean; MAE is
unchanged). The built-in tables (``penguins``, ``wine``) go through the same :func:`prepare`.

**Storage**, beside the run store (``<the store file's folder>/tables``, see :func:`tables_root`):
the file's bytes content-addressed as ``data/<sha256>.csv`` and the resolved spec as
``specs/<key>.json``, where the key hashes the canonical spec (the data's hash, inputs, targets,
kinds). Both are written atomically and never overwritten; nothing is ever deleted, and nothing is
written before the table validates. A config names the data set by that key, so its JSON re-runs
it to the same numbers wherever the tables folder is found. Where: the folders added with
:func:`add_search_root` in this process (opening a run store adds its own: the command line, the
app and its worker processes all open theirs; the estimator's child is told its parent's), then
the default store's folder (``$MTL_STORE``'s, else ``./runs/tables``).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import math
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mtl_core.registry import SuiteInfo, TaskInfo

Kind = Literal["classification", "regression"]
KINDS: tuple[Kind, ...] = ("classification", "regression")

DATA_SEED = 0  # the train/validation split of every table; not a run's seed
VALIDATION_FRACTION = 0.2  # of each class of the first classification target, rounded
KEY_PREFIX = "table-"
KEY_PATTERN = re.compile(r"table-[0-9a-f]{12}")
FORMAT = 1  # of the canonical spec: a change to what prepare() makes of a table gets a new number
DEFAULT_STORE = Path("runs") / "mtl.db"  # the run store's default (mtl_core.runs.store.DEFAULT_PATH)
TABLES_FOLDER = "tables"
MOSTLY_NUMERIC = 0.8  # a text column whose values are numbers this often has a typo, not classes


@dataclass(frozen=True)
class TableLimits:
    """What a table may hold; :meth:`describe` says it in one sentence for the page."""

    max_bytes: int = 10 * 1024 * 1024
    max_rows: int = 100_000
    max_columns: int = 200
    max_classes: int = 50  # of a classification target, and of a text input's values
    max_inferred_classes: int = 20  # whole numbers with at most this many values read as classes
    min_rows: int = 20  # with a value in every chosen column

    def describe(self) -> str:
        return (f"A CSV file (UTF-8, with a header row) of at most {self.max_bytes // (1024 * 1024)} MB, "
                f"{self.max_rows:,} rows and {self.max_columns} columns; at least {self.min_rows} rows "
                f"with a value in every chosen column, and at most {self.max_classes} classes per "
                f"classification target.")


LIMITS = TableLimits()


class TableError(ValueError):
    """A table, or a choice of its columns, cannot be trained on; ``str()`` is one sentence."""


# --- reading ---------------------------------------------------------------------------------

def display_name(name: str) -> str:
    """A file's name as the page and the messages show it: no folders, no control characters."""
    text = "".join(char for char in Path(str(name).replace("\\", "/")).name if char.isprintable())
    text = text.strip() or "the file"
    return text if len(text) <= 60 else text[:59] + "…"


def read_table(raw: bytes, name: str) -> pd.DataFrame:
    """The table in ``raw`` (the bytes of a CSV file called ``name``), columns as pandas infers
    them (numbers or text); raises TableError when it is not a CSV (binary, not UTF-8, one
    column, unparseable), too large (bytes, rows, columns) or empty."""
    shown = display_name(name)
    if len(raw) > LIMITS.max_bytes:
        raise TableError(f"{shown} is {len(raw) / 1024 / 1024:.1f} MB; a table may be at most "
                         f"{LIMITS.max_bytes // (1024 * 1024)} MB.")
    if not raw.strip():
        raise TableError(f"{shown} is empty.")
    if raw.startswith(b"PK\x03\x04"):
        raise TableError(f"{shown} is a ZIP archive or an Excel workbook, not a CSV file: save it as "
                         f"CSV (UTF-8) and upload that.")
    if b"\0" in raw:
        raise TableError(f"{shown} is not a CSV file (it holds binary data): save the table as CSV (UTF-8).")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise TableError(f"{shown} is not UTF-8 text (byte {error.start + 1:,} is not): save it as "
                         f"CSV (UTF-8).") from None
    header = text.lstrip("\r\n").split("\n", 1)[0]
    separator = max(",;\t", key=header.count) if any(mark in header for mark in ",;\t") else ","
    try:
        width = len(next(csv.reader([header], delimiter=separator)))
    except (csv.Error, StopIteration):
        width = 0
    if width > LIMITS.max_columns:
        raise TableError(f"{shown} has {width:,} columns; a table may have at most {LIMITS.max_columns}.")
    try:
        frame = pd.read_csv(io.StringIO(text), sep=separator, nrows=LIMITS.max_rows + 1,
                            skipinitialspace=True, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise TableError(f"{shown} is empty.") from None
    except (pd.errors.ParserError, csv.Error, ValueError, OverflowError) as error:
        raise TableError(f"{shown} could not be read as CSV: {_parser_problem(error)}.") from None
    if frame.shape[1] < 2:
        raise TableError(f"{shown} has a single column: a CSV file separates its columns with commas "
                         f"(or semicolons or tabs), and a table here needs at least three.")
    if frame.shape[1] > LIMITS.max_columns:
        raise TableError(f"{shown} has {frame.shape[1]:,} columns; a table may have at most "
                         f"{LIMITS.max_columns}.")
    if len(frame) > LIMITS.max_rows:
        raise TableError(f"{shown} has more than {LIMITS.max_rows:,} rows; a table may have at most "
                         f"{LIMITS.max_rows:,}.")
    if len(frame) == 0:
        raise TableError(f"{shown} has a header but no rows.")
    frame.columns = [str(column) for column in frame.columns]
    return frame.reset_index(drop=True)


def _parser_problem(error: BaseException) -> str:
    text = " ".join(str(error).split())
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if fields:
        expected, line, saw = fields.groups()
        return f"line {line} has {saw} fields where the header has {expected}"
    if "EOF inside string" in text:
        return "a quotation mark is never closed"
    return text.removeprefix("Error tokenizing data. ").removeprefix("C error: ")[:160].rstrip(".")


# --- columns ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ColumnInfo:
    """What a column can be: ``kind`` None means unusable, and ``reason`` says why in a sentence.
    ``numeric``: every value is a number (as an input, one standardised number; otherwise one
    0/1 input per value). ``distinct`` counts the different values, ``missing`` the empty cells."""

    name: str
    kind: Kind | None
    reason: str | None
    numeric: bool
    distinct: int
    missing: int


def inspect_columns(frame: pd.DataFrame) -> dict[str, ColumnInfo]:
    """Every column's inferred kind, or the reason it cannot be used, in the frame's order."""
    return {str(name): _inspect(str(name), frame[name]) for name in frame.columns}


def column_kinds(frame: pd.DataFrame) -> dict[str, Kind | None]:
    """column -> "classification" | "regression" | None (unusable: see :func:`inspect_columns`)."""
    return {name: info.kind for name, info in inspect_columns(frame).items()}


def default_inputs(frame: pd.DataFrame, targets: Iterable[str]) -> list[str]:
    """Every usable column that is not a target, in the frame's order."""
    chosen = set(targets)
    return [name for name, info in inspect_columns(frame).items() if name not in chosen and info.kind]


def _inspect(name: str, series: pd.Series) -> ColumnInfo:
    values = series.dropna()
    missing = len(series) - len(values)
    quoted = _quote(name)

    def unusable(reason: str, *, numeric: bool = False, distinct: int = 0) -> ColumnInfo:
        return ColumnInfo(name, None, reason, numeric, distinct, missing)

    if values.empty:
        return unusable(f"Column {quoted} is empty (every value is missing).")
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        numbers = values.to_numpy(dtype=np.float64)
        distinct = int(len(np.unique(numbers)))
        infinite = np.flatnonzero(~np.isfinite(numbers))
        if len(infinite):
            row = values.index[infinite[0]]
            return unusable(f"Column {quoted} holds an infinite number in data row {row + 1}: correct "
                            f"or empty that cell.", numeric=True, distinct=distinct)
        if distinct == 1:
            return unusable(f"Column {quoted} holds the same value ({_label(numbers[0])}) in every row: "
                            f"there is nothing to learn from it or to predict.", numeric=True, distinct=1)
        whole = bool(np.all(numbers == np.floor(numbers)))
        if whole and distinct == len(numbers) > LIMITS.max_inferred_classes \
                and np.all(np.diff(np.sort(numbers)) == 1):
            return unusable(f"Column {quoted} counts the rows ({_label(numbers.min())}, "
                            f"{_label(numbers.min() + 1)}, …): an index, not something to learn from "
                            f"or to predict.", numeric=True, distinct=distinct)
        kind: Kind = "classification" if whole and distinct <= LIMITS.max_inferred_classes else "regression"
        return ColumnInfo(name, kind, None, True, distinct, missing)
    texts = values.astype(str)
    distinct = int(texts.nunique())
    as_numbers = pd.to_numeric(texts, errors="coerce")
    numeric_share = float(as_numbers.notna().mean())
    if numeric_share == 1.0:  # numbers that pandas kept as text: read them as the numbers they are
        return _inspect(name, pd.to_numeric(series.astype(str).where(series.notna()), errors="coerce"))
    if numeric_share >= MOSTLY_NUMERIC:
        position = int(np.flatnonzero(as_numbers.isna().to_numpy())[0])
        row, value = values.index[position], texts.iloc[position]
        return unusable(f"Column {quoted} holds numbers, but data row {row + 1} holds {_quote(value)}: "
                        f"correct or empty that cell.", distinct=distinct)
    if distinct == 1:
        return unusable(f"Column {quoted} holds the same value ({_quote(texts.iloc[0])}) in every row: "
                        f"there is nothing to learn from it or to predict.", distinct=1)
    if distinct == len(texts):
        return unusable(f"Column {quoted} holds a different text in every row (an id or a name?): it "
                        f"cannot be a class.", distinct=distinct)
    if distinct > LIMITS.max_classes:
        return unusable(f"Column {quoted} holds {distinct:,} different texts; a column of classes may "
                        f"have at most {LIMITS.max_classes}.", distinct=distinct)
    return ColumnInfo(name, "classification", None, False, distinct, missing)


def _quote(text: Any) -> str:
    text = str(text)
    return f"'{text}'" if len(text) <= 40 else f"'{text[:39]}…'"


def _label(number: float) -> str:
    """A number as a class name: whole numbers without a decimal point."""
    number = float(number)
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else f"{number:.6g}"


# --- the spec --------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class TableSpec:
    """Which table (by the sha256 of its bytes), which columns are targets and which inputs, and
    the targets' kinds where they differ from the inferred ones; ``file_name`` is for display.

    ``inputs`` empty means every other usable column; ``kinds`` (a mapping, kept as sorted pairs
    so that a spec is hashable) may name targets only. :func:`prepare` returns the resolved spec:
    inputs and targets listed in the table's column order, a kind for every target.
    """

    data_sha256: str
    targets: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    kinds: tuple[tuple[str, str], ...] = ()
    file_name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", _names(self.targets))
        object.__setattr__(self, "inputs", _names(self.inputs))
        kinds = self.kinds.items() if isinstance(self.kinds, Mapping) else self.kinds
        object.__setattr__(self, "kinds", tuple(sorted((str(k), str(v)) for k, v in kinds)))
        object.__setattr__(self, "file_name", display_name(self.file_name) if self.file_name else "")

    @classmethod
    def for_bytes(cls, raw: bytes, file_name: str, *, targets: Sequence[str], inputs: Sequence[str] = (),
                  kinds: Mapping[str, str] | None = None) -> TableSpec:
        return cls(data_sha256=hashlib.sha256(raw).hexdigest(), targets=tuple(targets), inputs=tuple(inputs),
                   kinds=dict(kinds or {}), file_name=file_name)

    @property
    def kind_of(self) -> dict[str, str]:
        return dict(self.kinds)

    def canonical_json(self) -> str:
        """What the key hashes: what is trained, not what the file was called."""
        return json.dumps({"format": FORMAT, "data_sha256": self.data_sha256, "inputs": list(self.inputs),
                           "targets": list(self.targets), "kinds": self.kind_of},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    @property
    def key(self) -> str:
        """The suite key of this spec. Only a resolved spec (from :func:`prepare`) has the key
        its table is stored under."""
        return KEY_PREFIX + hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    return tuple(str(name) for name in value)


def task_names(columns: Sequence[str]) -> list[str]:
    """Task names for columns: lowercase ASCII letters, digits and "_", unique, never empty
    ("Body Mass (g)" -> "body_mass_g"); a name taken already gets "_2", "_3", ..."""
    names: list[str] = []
    for column in columns:
        ascii_text = unicodedata.normalize("NFKD", str(column)).encode("ascii", "ignore").decode()
        base = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_") or "column"
        name, count = base, 1
        while name in names:
            count += 1
            name = f"{base}_{count}"
        names.append(name)
    return names


# --- what would be trained -------------------------------------------------------------------

@dataclass(frozen=True)
class TableTask:
    """One target: its task name, the column it comes from (its label), its kind, and for a
    classification target the class names in index order; ``mean``: a regression target's
    training mean, which its values are centred on."""

    name: str
    column: str
    kind: Kind
    classes: tuple[str, ...] = ()
    mean: float = 0.0

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.kind == "classification" else 1


@dataclass(frozen=True, eq=False)
class PreparedTable:
    """What :func:`prepare` makes of a table: the resolved spec, tasks, input features (a text
    column becomes "column=value" 0/1 features), the split and the arrays ready to train on
    (float32 inputs standardised on the training rows; int64 class indices; float32 regression
    targets centred on their training mean), and the warnings to show. Arrays are read-only."""

    spec: TableSpec
    tasks: tuple[TableTask, ...]
    features: tuple[str, ...]
    x_train: np.ndarray
    x_val: np.ndarray
    y_train: Mapping[str, np.ndarray]
    y_val: Mapping[str, np.ndarray]
    input_mean: np.ndarray
    input_std: np.ndarray
    train_rows: np.ndarray  # row numbers (0-based, in the file's order) of the training rows
    val_rows: np.ndarray
    rows_total: int
    rows_dropped: int
    stratified_by: str | None  # the task the split keeps the class shares of
    warnings: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def rows_used(self) -> int:
        return self.rows_total - self.rows_dropped

    def task(self, name: str) -> TableTask:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)


def prepare(frame: pd.DataFrame, spec: TableSpec) -> PreparedTable:
    """Check ``spec`` against ``frame`` and make the arrays that would be trained on; TableError
    (one sentence) for: an unknown column, fewer than two targets, a column both input and target,
    no usable input, an unusable chosen column (its reason), an unknown kind, text in a regression
    target, a classification target with one class or more than ``LIMITS.max_classes``, fewer than
    ``LIMITS.min_rows`` rows with a value in every chosen column."""
    columns = [str(column) for column in frame.columns]
    targets = _unique(spec.targets, "target")
    _known(targets, columns)
    if len(targets) < 2:
        raise TableError(f"Choose at least two target columns: multi-task learning needs two tasks or more "
                         f"(got {len(targets)}).")
    inputs = _unique(spec.inputs, "input") or default_inputs(frame, targets)
    _known(inputs, columns)
    both = [name for name in inputs if name in targets]
    if both:
        raise TableError(f"Column {_quote(both[0])} is chosen both as an input and as a target: a task "
                         f"cannot learn from its own answer.")
    if not inputs:
        raise TableError("No column is left to learn from: every other column is a target or unusable; "
                         "keep at least one usable column as an input.")
    order = {name: i for i, name in enumerate(columns)}
    targets = sorted(targets, key=order.__getitem__)
    inputs = sorted(inputs, key=order.__getitem__)
    infos = {name: _inspect(name, frame[name]) for name in [*inputs, *targets]}
    for name in inputs:
        if infos[name].kind is None:
            raise TableError(infos[name].reason)
    kinds = _target_kinds(spec, targets, infos)

    used = frame[[*inputs, *targets]]
    complete = used.notna().all(axis=1).to_numpy()
    rows = np.flatnonzero(complete)
    dropped = len(frame) - len(rows)
    if len(rows) < LIMITS.min_rows:
        worst = used.isna().sum().sort_values(ascending=False)
        most = ", ".join(f"{_quote(name)} ({count:,})" for name, count in worst.items() if count)[:200]
        raise TableError(f"Only {len(rows):,} of {len(frame):,} rows have a value in every chosen column; "
                         f"at least {LIMITS.min_rows} are needed (missing most: {most or 'none'}).")
    warnings = []
    if dropped:
        worst_column = used.isna().sum().idxmax()
        one = dropped == 1
        warnings.append(f"{dropped:,} of {len(frame):,} rows {'has' if one else 'have'} a missing value in a "
                        f"chosen column ({'in' if one else 'most in'} {_quote(worst_column)}) and "
                        f"{'is' if one else 'are'} left out.")
    kept = used.iloc[rows]

    names = dict(zip(targets, task_names(targets), strict=True))
    labels: dict[str, np.ndarray] = {}
    classes: dict[str, tuple[str, ...]] = {}
    for column in targets:
        if kinds[column] == "classification":
            labels[column], classes[column] = _class_indices(column, kept[column], infos[column].numeric)
        else:
            labels[column] = _numbers(kept[column])
    features, x = _features(kept, inputs, infos)

    stratify = next((column for column in targets if kinds[column] == "classification"), None)
    train, val = _split(len(rows), labels[stratify] if stratify else None)
    if stratify is not None:
        for index, name in enumerate(classes[stratify]):
            if not np.any(labels[stratify][val] == index):
                warnings.append(f"Class {_quote(name)} of {_quote(stratify)} has too few rows to be held "
                                f"out: it is never validated.")
    mean = x[train].mean(axis=0)
    std = x[train].std(axis=0)
    std[std == 0] = 1.0  # a feature constant on the training rows: centred, not scaled
    x = ((x - mean) / std).astype(np.float32)

    tasks, y_train, y_val = [], {}, {}
    for column in targets:
        name = names[column]
        values = labels[column]
        if kinds[column] == "classification":
            tasks.append(TableTask(name, column, "classification", classes[column]))
            y_train[name], y_val[name] = _frozen(values[train]), _frozen(values[val])
        else:
            centre = float(values[train].mean())
            tasks.append(TableTask(name, column, "regression", (), centre))
            centred = (values - centre).astype(np.float32)
            y_train[name], y_val[name] = _frozen(centred[train]), _frozen(centred[val])
    resolved = TableSpec(data_sha256=spec.data_sha256, targets=tuple(targets), inputs=tuple(inputs),
                         kinds={column: kinds[column] for column in targets}, file_name=spec.file_name)
    return PreparedTable(
        spec=resolved, tasks=tuple(tasks), features=tuple(features),
        x_train=_frozen(x[train]), x_val=_frozen(x[val]), y_train=y_train, y_val=y_val,
        input_mean=_frozen(mean), input_std=_frozen(std),
        train_rows=_frozen(rows[train]), val_rows=_frozen(rows[val]),
        rows_total=len(frame), rows_dropped=dropped, stratified_by=names[stratify] if stratify else None,
        warnings=tuple(warnings))


def _unique(names: Sequence[str], what: str) -> list[str]:
    seen: list[str] = []
    for name in names:
        if name in seen:
            raise TableError(f"Column {_quote(name)} is chosen twice as an {what}." if what == "input"
                             else f"Column {_quote(name)} is chosen twice as a {what}.")
        seen.append(name)
    return seen


def _known(names: Sequence[str], columns: Sequence[str]) -> None:
    for name in names:
        if name not in columns:
            listed = ", ".join(columns)
            listed = listed if len(listed) <= 200 else listed[:199] + "…"
            raise TableError(f"The table has no column {_quote(name)} (its columns: {listed}).")


def _target_kinds(spec: TableSpec, targets: list[str], infos: Mapping[str, ColumnInfo]) -> dict[str, Kind]:
    overrides = spec.kind_of
    for column, kind in overrides.items():
        if column not in targets:
            raise TableError(f"A kind is given for {_quote(column)}, which is not a target.")
        if kind not in KINDS:
            raise TableError(f"The kind of {_quote(column)} must be classification or regression (got "
                             f"{_quote(kind)}).")
    kinds: dict[str, Kind] = {}
    for column in targets:
        info = infos[column]
        if info.kind is None:
            raise TableError(info.reason)
        kind = overrides.get(column, info.kind)
        if kind == "regression" and not info.numeric:
            raise TableError(f"Column {_quote(column)} holds text, not numbers: it cannot be a regression "
                             f"target (make it a classification target).")
        kinds[column] = kind  # type: ignore[assignment]
    return kinds


def _class_indices(column: str, values: pd.Series, numeric: bool) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class indices in sorted order of the labels (numbers by value, texts alphabetically)."""
    keys = _numbers(values) if numeric else values.astype(str).to_numpy(dtype=object)
    unique, indices = np.unique(keys, return_inverse=True)
    names = tuple(_label(value) for value in unique) if numeric else tuple(str(value) for value in unique)
    if len(names) < 2:
        raise TableError(f"Target {_quote(column)} has one class ({_quote(names[0])}) in the rows used: "
                         f"there is nothing to learn.")
    if len(names) > LIMITS.max_classes:
        raise TableError(f"Target {_quote(column)} has {len(names):,} classes; a classification target may "
                         f"have at most {LIMITS.max_classes} (make it a regression target if it is a number).")
    return indices.astype(np.int64).reshape(-1), names


def _features(kept: pd.DataFrame, inputs: list[str], infos: Mapping[str, ColumnInfo]) -> tuple[list[str], np.ndarray]:
    names: list[str] = []
    blocks: list[np.ndarray] = []
    for column in inputs:
        values = kept[column]
        if infos[column].numeric:
            names.append(column)
            blocks.append(_numbers(values)[:, None])
        else:
            texts = values.astype(str).to_numpy(dtype=object)
            categories = sorted(set(texts))
            names += [f"{column}={category}" for category in categories]
            blocks.append((texts[:, None] == np.array(categories, dtype=object)[None, :]).astype(np.float64))
    return names, np.concatenate(blocks, axis=1)


def _numbers(values: pd.Series) -> np.ndarray:
    """A numeric column's values as float64 (also one whose numbers pandas read as text)."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64)
    return pd.to_numeric(values.astype(str)).to_numpy(dtype=np.float64)


def _split(n: int, classes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation positions: ``VALIDATION_FRACTION`` of each class (rounded) held
    out, seeded by ``DATA_SEED``; of all rows alike when there is no class, or when every class is
    too small to hold one out."""
    rng = np.random.default_rng(DATA_SEED)
    groups = [np.arange(n)] if classes is None else [np.flatnonzero(classes == c) for c in np.unique(classes)]
    train, val = [], []
    for members in groups:
        members = rng.permutation(members)
        held = round(len(members) * VALIDATION_FRACTION)
        val.append(members[:held])
        train.append(members[held:])
    if sum(len(part) for part in val) == 0:
        return _split(n, None)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


# --- where tables are stored -----------------------------------------------------------------

_added_roots: list[Path] = []


def tables_root(store_path: str | os.PathLike[str] | None = None) -> Path:
    """The tables folder beside a run store: ``<the store file's folder>/tables``; ``store_path``
    None: the default store, ``$MTL_STORE`` or ``./runs/mtl.db`` (as the store resolves it)."""
    chosen = store_path if store_path is not None else os.environ.get("MTL_STORE") or DEFAULT_STORE
    return Path(chosen).expanduser().absolute().parent / TABLES_FOLDER


def add_search_root(root: str | os.PathLike[str]) -> None:
    """Look for stored tables in ``root`` too, in this process (a run store opened on a path adds
    its own tables folder)."""
    path = Path(root).expanduser().absolute()
    if path in _added_roots:
        _added_roots.remove(path)
    _added_roots.insert(0, path)  # the latest first: the store just opened is the likeliest


def search_roots() -> list[Path]:
    """Where stored tables are looked for, in order: the folders added in this process (the
    latest first), then the default store's. A child process that opens no store is given
    them (the estimator's ``--tables``)."""
    default = tables_root()
    return [*_added_roots, *([default] if default not in _added_roots else [])]


def data_path(root: Path, data_sha256: str) -> Path:
    return root / "data" / f"{data_sha256}.csv"


def spec_path(root: Path, key: str) -> Path:
    return root / "specs" / f"{key}.json"


def store_table(raw: bytes, spec: TableSpec, root: str | os.PathLike[str] | None = None) -> str:
    """Validate the table and store it under ``root`` (None: :func:`tables_root` of the default
    store); returns its suite key, ``"table-<12 hex>"``. The bytes go to ``data/<sha256>.csv``,
    the resolved spec to ``specs/<key>.json``: each written atomically, only if not there yet.
    Storing the same thing twice does nothing more; a table that does not validate raises
    TableError before anything is written. ``root`` is added to this process's search path."""
    digest = hashlib.sha256(raw).hexdigest()
    if spec.data_sha256 != digest:
        raise TableError("The column choices were made for another file than the one given: choose the "
                         "columns again.")
    table = prepare(read_table(raw, spec.file_name or "the file"), spec)
    folder = Path(root).expanduser().absolute() if root is not None else tables_root()
    key = table.key
    document = json.dumps(stored_document(table), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    try:
        _write_once(data_path(folder, digest), raw)
        _write_once(spec_path(folder, key), document.encode())
    except OSError as error:
        raise TableError(f"The table cannot be stored in {folder} ({error.strerror or error}): make that "
                         f"folder writable.") from None
    add_search_root(folder)
    return key


def stored_document(table: PreparedTable) -> dict[str, Any]:
    """The spec file's content: the canonical spec (what the key hashes) and what the page and
    the registry show without reading the data: tasks with their classes, features, row counts."""
    spec = table.spec
    return {
        **json.loads(spec.canonical_json()),
        "key": table.key,
        "file_name": spec.file_name,
        "tasks": [{"name": task.name, "column": task.column, "kind": task.kind, "classes": list(task.classes),
                   "mean": task.mean} for task in table.tasks],
        "features": list(table.features),
        "rows": {"total": table.rows_total, "dropped": table.rows_dropped, "train": len(table.train_rows),
                 "validation": len(table.val_rows)},
        "stratified_by": table.stratified_by,
    }


def _write_once(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` unless a file is there: via a temporary file in the same
    folder and a hard link, so a reader never sees half a file and nothing is ever overwritten."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # stored meanwhile by another process: content-addressed, so the same bytes
        except OSError:  # a file system without hard links: the same, a moment less atomic
            if not path.exists():
                os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


# --- finding a stored table ------------------------------------------------------------------

@dataclass(frozen=True)
class StoredTable:
    """A stored table found by its key: the folder it is in, its spec file's content, its spec."""

    root: Path
    document: Mapping[str, Any]
    spec: TableSpec

    @property
    def data_file(self) -> Path:
        return data_path(self.root, self.spec.data_sha256)

    def read_bytes(self) -> bytes:
        """The stored file's bytes, checked against their hash."""
        try:
            raw = self.data_file.read_bytes()
        except OSError as error:
            raise TableError(f"The data of table {self.spec.key} cannot be read from {self.data_file} "
                             f"({error.strerror or error}): upload the CSV again or pass --data FILE.") from None
        if hashlib.sha256(raw).hexdigest() != self.spec.data_sha256:
            raise TableError(f"The stored data of table {self.spec.key} at {self.data_file} does not match "
                             f"its hash: the file was changed; restore it.")
        return raw


def find_table(key: str) -> StoredTable:
    """The stored table ``key`` names; TableError (one sentence: which key, which folders were
    searched, what to do) when none of :func:`search_roots` holds it."""
    roots = search_roots()
    if KEY_PATTERN.fullmatch(str(key)):
        for root in roots:
            path = spec_path(root, key)
            if path.is_file():
                return _read_spec(root, path, key)
    searched = ", ".join(str(root) for root in roots[:3]) + (f" and {len(roots) - 3} more" if len(roots) > 3 else "")
    raise TableError(f"No stored table {str(key)[:40]!r}: upload the CSV again on the Train page, or pass "
                     f"--data FILE (with --targets) to python -m mtl_core run (looked in {searched}).")


def _read_spec(root: Path, path: Path, key: str) -> StoredTable:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        spec = TableSpec(data_sha256=str(document["data_sha256"]), targets=tuple(document["targets"]),
                         inputs=tuple(document["inputs"]), kinds=dict(document["kinds"]),
                         file_name=str(document.get("file_name", "")))
        for task in document["tasks"]:
            if task["kind"] not in KINDS or not isinstance(task["name"], str):
                raise ValueError(task)
        valid = document.get("format") == FORMAT and spec.key == key
    except (OSError, ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise TableError(f"The stored spec of table {key} at {path} is damaged or from another version: "
                         f"upload the CSV again.")
    return StoredTable(root, document, spec)


class TableSuiteInfo(SuiteInfo):
    """A stored table's suite entry: its factory is called with the key (the suite has no knobs)."""

    def load(self) -> Any:
        return functools.partial(super().load(), self.key)


def suite_info(key: str) -> SuiteInfo:
    """The registry's resolver for ``"table-..."`` keys (``SUITES[key]``): the entry of a stored
    table, built from its spec file alone (the data is read when the suite is built)."""
    stored = find_table(key)
    document = stored.document
    tasks = tuple(_task_info(task) for task in document["tasks"])
    rows = document["rows"]
    used = rows["total"] - rows["dropped"]
    name = stored.spec.file_name or key
    targets = ", ".join(task.label for task in tasks)
    return TableSuiteInfo(
        key=key,
        name=f"{name} (your table)",
        summary=f"Your table {name}: {targets} from {len(document['inputs'])} other column"
                f"{'s' * (len(document['inputs']) != 1)}, {used:,} rows.",
        factory="mtl_core.suites.tables:build_user_table",
        input_kind="vector",
        extra={"small": {}, "table": dict(document)},
        tasks=tasks,
        default_tasks=tuple(task.name for task in tasks),
        knobs=(),
        paper=None,
    )


def _task_info(task: Mapping[str, Any]) -> TaskInfo:
    column = str(task["column"])
    if task["kind"] == "classification":
        classes = [str(name) for name in task["classes"]]
        shown = ", ".join(classes[:6]) + (", …" if len(classes) > 6 else "")
        return TaskInfo(name=task["name"], label=column, kind="classification", n_outputs=len(classes),
                        classes=tuple(classes),
                        metric="accuracy", higher_is_better=True,
                        help=f"Column {_quote(column)}: {len(classes)} classes ({shown}).")
    mean = float(task["mean"])
    return TaskInfo(name=task["name"], label=column, kind="regression", n_outputs=1, metric="mae",
                    higher_is_better=False,
                    help=f"Column {_quote(column)}, as the difference from its training rows' mean "
                         f"({_label(mean) if math.isfinite(mean) else mean}).")
