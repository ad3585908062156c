"""Suites made from scikit-learn's 1,797 real handwritten 8x8 digits (shipped with it: no download).

Two suites share one split of the *digit images* (not of derived examples), so no validation
example ever shows a digit image the model trained on:

- **multidigits**: two digits on one canvas, overlapping; tasks ``left`` and ``right`` (the
  MultiMNIST idea of Sabour et al. 2017, used for MTL by Sener & Koltun 2018, at 8x8).
- **digit_attributes**: one digit, six targets: class, parity, "5 or more", and three regression
  targets in their natural units (ink in pixels, centre in pixels, slant in px/px) whose losses
  differ in scale by orders of magnitude on purpose: that is what loss weighting exists for.

The data are fixed (seeded by ``DATA_SEED``, independent of a run's seed): every run of a
configuration sees the same examples. Built tensors are cached in-process and **shared between
callers: treat them as read-only** (index or ``.clone()`` them; never modify them in place).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mtl_core.suites import SUITES
from mtl_core.suites.backbones import cnn_encoder
from mtl_core.suites.base import SuiteData

DATA_SEED = 0
HELD_OUT_FRACTION = 0.2  # of each class, held out for validation
VAL_PAIRS = 2000
SIDE = 8  # digits are SIDE x SIDE pixels
MAX_INTENSITY = 16.0  # the raw digits are integers 0..16


# --- the digits and their split --------------------------------------------------------------

@functools.cache
def load_raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as raw intensities ``[1797, 8, 8]`` (float64, 0..16) and labels (int64).

    Reads the CSV that scikit-learn ships, found without importing scikit-learn: ``import
    sklearn`` alone takes over a second, which a worker would pay before its first step. Falls
    back to ``sklearn.datasets.load_digits`` if the file is not where scikit-learn keeps it.
    The arrays are read-only.
    """
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is not None and path.is_file():
        table = np.loadtxt(path, delimiter=",")
        images, labels = table[:, :-1], table[:, -1].astype(np.int64)
    else:  # pragma: no cover - depends on scikit-learn's layout
        from sklearn.datasets import load_digits  # ~1 s to import: only where the CSV is not found

        digits = load_digits()
        images, labels = digits.data, digits.target.astype(np.int64)
    images = np.ascontiguousarray(images.reshape(-1, SIDE, SIDE), dtype=np.float64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@functools.cache
def digit_split() -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and the held-out digits: a seeded split, stratified by class.

    ``HELD_OUT_FRACTION`` of each class (rounded) is held out: 1,438 training and 359 held-out
    digits. The dataset holds no two identical images, so index-disjoint is image-disjoint.
    """
    _, labels = load_raw_digits()
    rng = np.random.default_rng(DATA_SEED)
    train, held_out = [], []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        n_held_out = round(len(members) * HELD_OUT_FRACTION)
        held_out.append(members[:n_held_out])
        train.append(members[n_held_out:])
    train_idx, held_out_idx = np.sort(np.concatenate(train)), np.sort(np.concatenate(held_out))
    train_idx.setflags(write=False)
    held_out_idx.setflags(write=False)
    return train_idx, held_out_idx


# --- multidigits -----------------------------------------------------------------------------

def overlay_pairs(left: np.ndarray, right: np.ndarray, overlap: int) -> np.ndarray:
    """Put ``left[i]`` and ``right[i]`` (each ``[N, 8, 8]``) on one ``[N, 8, 16 - overlap]`` canvas.

    The left digit fills columns ``[0, 8)``, the right one ``[8 - overlap, 16 - overlap)``; where
    they share columns the brighter pixel wins (pixelwise max), as strokes of ink would.
    """
    if not 0 <= overlap <= SIDE:
        raise ValueError(f"overlap must be between 0 and {SIDE} (got {overlap})")
    canvas = np.zeros((len(left), SIDE, 2 * SIDE - overlap), dtype=np.float32)
    canvas[:, :, :SIDE] = left
    shared = canvas[:, :, SIDE - overlap:]
    np.maximum(shared, right, out=shared)
    return canvas


def _pairs(pool: np.ndarray, n: int, overlap: int, rng: np.random.Generator) -> tuple[Tensor, ...]:
    """``n`` pairs of digits drawn independently (with replacement) from the indices in ``pool``."""
    images, labels = load_raw_digits()
    left, right = rng.choice(pool, size=n), rng.choice(pool, size=n)
    canvas = overlay_pairs(images[left] / MAX_INTENSITY, images[right] / MAX_INTENSITY, overlap)
    return (torch.from_numpy(canvas).unsqueeze(1), torch.from_numpy(labels[left].copy()),
            torch.from_numpy(labels[right].copy()))


@functools.lru_cache(maxsize=8)
def _multidigits_tensors(overlap: int, train_pairs: int) -> tuple[Tensor, ...]:
    train_idx, held_out_idx = digit_split()
    # One stream each, so the validation pairs stay the same whatever train_pairs is.
    train = _pairs(train_idx, train_pairs, overlap, np.random.default_rng([DATA_SEED, 1]))
    val = _pairs(held_out_idx, VAL_PAIRS, overlap, np.random.default_rng([DATA_SEED, 2]))
    return (*train, *val)


def build_multidigits(overlap: int = 5, train_pairs: int = 20000) -> SuiteData:
    """Two digits per canvas; tasks ``left`` and ``right`` (10 classes each).

    Input ``[N, 1, 8, 16 - overlap]`` float32 in [0, 1]. ``train_pairs`` pairs are drawn from the
    training digits, 2,000 validation pairs from the held-out digits; the two digits of a pair
    are drawn independently, so the two labels are independent. Tensors are shared: read-only.
    """
    overlap, train_pairs = int(overlap), int(train_pairs)
    if train_pairs < 1:
        raise ValueError(f"train_pairs must be at least 1 (got {train_pairs})")
    x_train, left_train, right_train, x_val, left_val, right_val = _multidigits_tensors(overlap, train_pairs)
    input_shape = tuple(x_train.shape[1:])
    return SuiteData(
        info=SUITES["multidigits"],
        x_train=x_train,
        y_train={"left": left_train, "right": right_train},
        x_val=x_val,
        y_val={"left": left_val, "right": right_val},
        make_encoder=lambda: cnn_encoder(input_shape),
    )


# --- digit attributes ------------------------------------------------------------------------

def digit_attributes(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The six targets of each raw digit (``images``: ``[N, 8, 8]``, intensities 0..16).

    ``ink``: sum of intensities / 16, i.e. fully-inked-pixel equivalents (about 20).
    ``centre``: row of the ink's centre of mass, rows numbered 0 (top) to 7 (about 3.5).
    ``slant``: ``-cov(col, row) / var(row)`` under the ink's weights, the shear that best maps a
    vertical stroke onto the digit: how many columns the ink moves right per row upwards.
    """
    images = np.asarray(images, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    mass = images.sum(axis=(1, 2))
    coords = np.arange(SIDE, dtype=np.float64)
    row_mean = (images.sum(axis=2) * coords).sum(axis=1) / mass
    col_mean = (images.sum(axis=1) * coords).sum(axis=1) / mass
    d_row = coords[None, :, None] - row_mean[:, None, None]
    d_col = coords[None, None, :] - col_mean[:, None, None]
    var_row = (images * d_row**2).sum(axis=(1, 2)) / mass
    cov = (images * d_row * d_col).sum(axis=(1, 2)) / mass
    return {
        "digit": labels,
        "parity": labels % 2,
        "large": (labels >= 5).astype(np.int64),
        "ink": mass / MAX_INTENSITY,
        "centre": row_mean,
        "slant": -cov / var_row,
    }


def shifted_copies(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the digits moved one column left or right, wherever that crops no ink.

    Returns ``(source, shifted)``: ``shifted[k]`` is ``images[source[k]]`` moved one column,
    only where the column pushed off the edge is blank (99% of the digits have a blank first
    column, 88% a blank last one; no row is ever blank, so there are no vertical shifts). Moving
    ink sideways without cropping leaves ink, centre row and slant exactly unchanged.
    """
    left_ok = np.flatnonzero(images[:, :, 0].sum(axis=1) == 0)
    right_ok = np.flatnonzero(images[:, :, -1].sum(axis=1) == 0)
    moved_left = np.zeros_like(images[left_ok])
    moved_left[:, :, :-1] = images[left_ok, :, 1:]
    moved_right = np.zeros_like(images[right_ok])
    moved_right[:, :, 1:] = images[right_ok, :, :-1]
    return np.concatenate([left_ok, right_ok]), np.concatenate([moved_left, moved_right])


@functools.lru_cache(maxsize=2)
def _attribute_tensors(augment: bool) -> tuple[Tensor, dict[str, Tensor], Tensor, dict[str, Tensor]]:
    images, labels = load_raw_digits()
    train_idx, held_out_idx = digit_split()
    train_images, train_labels = images[train_idx], labels[train_idx]
    if augment:
        source, moved = shifted_copies(train_images)
        train_images = np.concatenate([train_images, moved])
        train_labels = np.concatenate([train_labels, train_labels[source]])

    def tensors(raw: np.ndarray, classes: np.ndarray) -> tuple[Tensor, dict[str, Tensor]]:
        x = torch.from_numpy((raw / MAX_INTENSITY).astype(np.float32)).unsqueeze(1)
        y = {}
        for name, values in digit_attributes(raw, classes).items():
            dtype = torch.float32 if values.dtype.kind == "f" else torch.long
            y[name] = torch.from_numpy(np.ascontiguousarray(values)).to(dtype)
        return x, y

    return (*tensors(train_images, train_labels), *tensors(images[held_out_idx], labels[held_out_idx]))


def build_digit_attributes(*, augment: bool = True) -> SuiteData:
    """One digit, six targets (see :func:`digit_attributes`); input ``[N, 1, 8, 8]`` in [0, 1].

    Training examples are the 1,438 training digits first, then (``augment``) their shifted
    copies from :func:`shifted_copies` (about 2,700 more, targets recomputed from the moved
    images); validation is the 359 held-out digits, unshifted. Tensors are shared: read-only.
    """
    x_train, y_train, x_val, y_val = _attribute_tensors(bool(augment))
    return SuiteData(
        info=SUITES["digit_attributes"],
        x_train=x_train,
        y_train=dict(y_train),
        x_val=x_val,
        y_val=dict(y_val),
        make_encoder=lambda: cnn_encoder((1, SIDE, SIDE)),
    )
