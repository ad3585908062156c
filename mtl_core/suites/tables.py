"""Suites made from tables: two real ones shipped with installed packages (no download), and a
person's own CSV (:mod:`mtl_core.suites.user_tables`), all through the same code.

- **penguins**: the Palmer penguins (Gorman, Williams & Fraser 2014), from the ``palmerpenguins``
  package's ``penguins.csv`` (344 penguins, CC0). Inputs: bill length and depth (mm) and the
  island (one 0/1 input each for Biscoe, Dream, Torgersen); tasks: species (3), sex (2), body mass
  (kg) and flipper length (mm). The 11 rows with a missing value in one of these columns (2 with
  no measurements at all, 9 more without a sex) are left out: 333 penguins, 266 for training.
- **wine**: the 178 wines of three cultivars from one Italian region (Forina et al.; the UCI copy
  that scikit-learn ships as ``wine_data.csv``). Inputs: the eleven other measurements; tasks: the
  cultivar (3), alcohol (% vol) and proline (mg/L, in the hundreds: a loss thousands of times
  the others'). No value is missing: 142 wines for training.

A table becomes a suite in :func:`mtl_core.suites.user_tables.prepare` (torch-free): rows with a
missing value left out, a split 80/20 seeded by ``DATA_SEED`` and stratified by the first
classification task, inputs standardised with the training rows' mean and standard deviation,
regression targets in their units centred on the training mean; here it becomes tensors and the
suite's MLP backbone. Built tensors are cached in-process and **shared between callers: treat
them as read-only**.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mtl_core.registry import SuiteInfo
from mtl_core.suites import SUITES
from mtl_core.suites.backbones import mlp_encoder
from mtl_core.suites.base import SuiteData
from mtl_core.suites.user_tables import (
    PreparedTable,
    TableError,
    TableSpec,
    find_table,
    prepare,
    read_table,
)

PENGUIN_INPUTS = ("bill_length_mm", "bill_depth_mm", "island")
WINE_COLUMNS = ("alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
                "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
                "od280_od315", "proline", "cultivar")  # the order of scikit-learn's wine_data.csv


def suite_data(info: SuiteInfo, table: PreparedTable) -> SuiteData:
    """A prepared table as a suite: its arrays as tensors (sharing their memory), an MLP trunk."""
    features = len(table.features)

    def tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {name: _tensor(values) for name, values in arrays.items()}

    return SuiteData(info=info, x_train=_tensor(table.x_train), y_train=tensors(dict(table.y_train)),
                     x_val=_tensor(table.x_val), y_val=tensors(dict(table.y_val)),
                     make_encoder=lambda: mlp_encoder(features), feature_names=tuple(table.features))


def _tensor(array: np.ndarray) -> torch.Tensor:
    # from_numpy refuses read-only arrays; the tensors are read-only by contract (see above), and
    # a copy of a table this small costs nothing next to keeping the arrays' flags honest.
    return torch.from_numpy(array.copy())


def _check_matches(info: SuiteInfo, table: PreparedTable) -> None:
    """The prepared tasks are the registered ones (names, kinds, number of classes, and the class
    names where the registry gives them)."""
    named = {task.name for task in info.tasks if task.classes}
    made = {task.name: (task.kind, task.n_outputs, task.classes if task.name in named else ())
            for task in table.tasks}
    registered = {task.name: (task.kind, task.n_outputs, task.classes) for task in info.tasks}
    if made != registered:
        raise RuntimeError(f"{info.key}: the table gives tasks {made}, the registry says {registered}")


# --- the shipped tables ----------------------------------------------------------------------

def _package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    path = Path(spec.origin).parent.joinpath(*parts) if spec and spec.origin else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"{'/'.join(parts)} is not in the installed {package} package: "
                                f"pip install -r requirements.txt")
    return path


@functools.cache
def penguins_table() -> PreparedTable:
    """The Palmer penguins, prepared (see the module's docstring). Reads the package's CSV
    without importing ``palmerpenguins`` (whose import would only load this file with pandas)."""
    path = _package_file("palmerpenguins", "data", "penguins.csv")
    raw = path.read_bytes()
    frame = pd.read_csv(path)
    frame["body_mass"] = frame["body_mass_g"] / 1000.0  # kg: a loss on another scale than the mm
    frame["flipper_length"] = frame["flipper_length_mm"]
    spec = TableSpec(data_sha256=hashlib.sha256(raw).hexdigest(), file_name=path.name,
                     inputs=PENGUIN_INPUTS, targets=("species", "sex", "body_mass", "flipper_length"),
                     kinds={"species": "classification", "sex": "classification",
                            "body_mass": "regression", "flipper_length": "regression"})
    return prepare(frame, spec)


@functools.cache
def wine_table() -> PreparedTable:
    """The wines, prepared (see the module's docstring). Reads the CSV that scikit-learn ships,
    without importing scikit-learn (over a second: a worker would pay it before its first step)."""
    path = _package_file("sklearn", "datasets", "data", "wine_data.csv")
    raw = path.read_bytes()
    # The first line is scikit-learn's own header (178 rows, 13 features, the class names).
    frame = pd.read_csv(path, skiprows=1, header=None, names=list(WINE_COLUMNS))
    frame["cultivar"] = frame["cultivar"] + 1  # the cultivars are numbered 1 to 3 in the source
    spec = TableSpec(data_sha256=hashlib.sha256(raw).hexdigest(), file_name=path.name,
                     inputs=tuple(c for c in WINE_COLUMNS if c not in {"cultivar", "alcohol", "proline"}),
                     targets=("cultivar", "alcohol", "proline"),
                     kinds={"cultivar": "classification", "alcohol": "regression", "proline": "regression"})
    return prepare(frame, spec)


@functools.cache
def build_penguins() -> SuiteData:
    """Palmer penguins: 5 inputs, tasks species, sex, body_mass (kg), flipper_length (mm);
    266 training and 67 validation penguins. Tensors are shared: read-only."""
    info = SUITES["penguins"]
    table = penguins_table()
    _check_matches(info, table)
    return suite_data(info, table)


@functools.cache
def build_wine() -> SuiteData:
    """Wine: 11 inputs, tasks cultivar, alcohol (% vol), proline (mg/L); 142 training and 36
    validation wines. Tensors are shared: read-only."""
    info = SUITES["wine"]
    table = wine_table()
    _check_matches(info, table)
    return suite_data(info, table)


# --- a person's own table --------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def build_user_table(key: str) -> SuiteData:
    """A stored table (``SUITES[key]``, key ``"table-<hash>"``): its file read back, checked
    against its hash, prepared as when it was stored. Tensors are shared: read-only."""
    stored = find_table(key)
    table = prepare(read_table(stored.read_bytes(), stored.spec.file_name or key), stored.spec)
    if table.key != key:
        raise TableError(f"Table {key} reads differently in this version ({table.key}): upload the CSV again.")
    info = SUITES[key]
    _check_matches(info, table)
    return suite_data(info, table)
