"""Sharing a set-up: uploads are read defensively; the command lines rebuild the exact config."""

from __future__ import annotations

import json
import pickle
import shlex

import pytest

from mtl_core.__main__ import build_parser, config_from_args
from mtl_core.config import ConfigError, RunConfig
from mtl_core.runs.share import MAX_UPLOAD_BYTES, cli_line, config_from_upload, sweep_line
from mtl_core.runs.sweep import make_grid

CONFIG = RunConfig.parse({"suite": "synthetic", "suite_params": {"correlation": -0.25}, "method": "cagrad",
                          "method_params": {"c": 0.3}, "arch": "mmoe", "lr": 0.00123, "steps": 77,
                          "seed": 5, "batch_size": 33, "probe_every": 0})


def test_a_downloaded_config_uploads_back_to_the_same_config():
    assert config_from_upload(CONFIG.to_json().encode()) == CONFIG


@pytest.mark.parametrize("data, says", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00binary", "not text"),
    (b" " * (MAX_UPLOAD_BYTES + 1), "at most 64 KiB"),
    (b"[" * 30_000 + b"]" * 30_000, "nests more than"),
    (json.dumps({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}).encode(), "nests more than"),
    (b'{"lr": "fast"}', "lr: must be a number, not text"),
    (b'{"steps": [1, 2]}', "steps"),
    (b'{"rm -rf": 1}', "rm -rf: is not a setting"),
    (b'{"__class__": "os.system", "suite": "multidigits"}', "__class__: is not a setting"),
    (b'[1, 2, 3]', "must be a JSON object"),
    (b'"just a string"', "must be a JSON object"),
    (pickle.dumps(CONFIG.model_dump()), "not"),
], ids=["broken", "binary", "huge", "deeply-nested", "nested-object", "wrong-type", "list-for-int",
        "unknown-key", "hostile-key", "list", "string", "pickle"])
def test_a_broken_or_hostile_upload_is_one_clear_message(data, says):
    with pytest.raises(ConfigError) as caught:
        config_from_upload(data)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)


def test_the_cli_line_rebuilds_the_exact_config():
    line = cli_line(CONFIG)
    assert line.startswith("python -m mtl_core run --suite synthetic")
    args = build_parser().parse_args(shlex.split(line)[3:])
    assert config_from_args(args) == CONFIG


def test_the_sweep_line_rebuilds_the_grid():
    grid = make_grid(CONFIG, ["ew", "cagrad"], ["hps", "mmoe"], [0, 1])
    line = sweep_line(grid.base, grid.methods, grid.archs, grid.seeds)
    args = build_parser().parse_args(shlex.split(line)[3:])
    assert args.methods == "cagrad,ew" and args.archs == "mmoe,hps" and args.seeds == "0,1"
    # The CLI's base: the first method/arch listed, then the same grid of configs.
    base = config_from_args(type(args)(**{**vars(args), "method": "cagrad", "arch": "mmoe"}))
    rebuilt = make_grid(base, args.methods, args.archs, args.seeds)
    assert sorted(c.to_json() for c in rebuilt.configs()) == sorted(c.to_json() for c in grid.configs())
