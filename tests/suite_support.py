"""The suites that registry-wide tests build: every one whose small set-up needs no download.

Tests never download: MultiFashion needs Fashion-MNIST for either source, so it is built from a
small fake set in tests/test_mnist_suite.py instead.
"""

from __future__ import annotations

from mtl_core.suites import SUITES, required_download

OFFLINE = [entry.key for entry in SUITES if required_download(entry.key, entry.extra["small"]) is None]
