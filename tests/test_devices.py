"""Device choice and the CPU thread policy shared by the app's workers and the CLI."""

from __future__ import annotations

import os

import pytest
import torch

from mtl_core.engine.devices import default_threads, describe


@pytest.mark.parametrize(("setting", "cores", "expected"), [
    (None, 2, 1), (None, 8, 7), (None, 1, 1), ("3", 2, 3), ("0", 4, 3), ("lots", 4, 3)])
def test_runs_leave_one_core_to_the_app_unless_told_otherwise(monkeypatch, setting, cores, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    if setting is None:
        monkeypatch.delenv("MTL_TORCH_THREADS", raising=False)
    else:
        monkeypatch.setenv("MTL_TORCH_THREADS", setting)
    assert default_threads() == expected


def test_a_cpu_run_names_its_thread_count_because_its_numbers_depend_on_it():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert describe("cpu") == "cpu, 1 thread"
        torch.set_num_threads(2)
        assert describe("cpu") == "cpu, 2 threads"
    finally:
        torch.set_num_threads(threads)
    assert describe("cuda") == "cuda"

