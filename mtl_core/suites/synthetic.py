"""Two regression tasks with a controlled correlation: the MMoE paper's synthetic benchmark.

Ma, Zhao, Yi, Chen, Hong & Chi, "Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts", KDD 2018, section 3.2: take orthogonal unit vectors u1, u2 in R^d,
set w1 = c u1 and w2 = c (p u1 + sqrt(1 - p^2) u2), so that cos(w1, w2) = p; draw x ~ N(0, I_d);

    y_t = w_t . x + sum_{i=1..m} sin(alpha_i w_t . x + beta_i) + eps_t,   eps_t ~ N(0, 0.01).

With the sines left out, the two labels' Pearson correlation is exactly p; with them it still
grows with p, but is not p. The paper calls p the "task correlation".

Where the constants come from:

- d = 100: stated in the paper (section 5.1, "The input dimension is 100").
- Noise N(0, 0.01): stated in the paper (section 3.2). The paper does not say whether 0.01 is
  the variance or the standard deviation; we read it the usual way, N(mean, variance), so the
  noise's standard deviation is 0.1. (The generator below uses 0.01 as the standard deviation.)
  Either way the noise is small next to the signal (label variance about 6).
- c, m, alpha_i, beta_i: **not given in the paper** ("given parameters that control the shape of
  the sinusoidal functions"). We take c = 1, m = 10, alpha_i = i and beta_i = (i - 1)^2
  (i = 1..10) from the "Simple generator for synthetic multi-task data" published by Google
  Research (the authors' employer) in the google-research/google-research repository, whose
  comment says the same: the paper does not provide these values. They could not be confirmed
  as the values behind the paper's figures.

The data are fixed (seeded by ``DATA_SEED``, independent of a run's seed); u1, u2 and x do not
depend on p, so moving the correlation knob changes only w2: a controlled experiment. Built
tensors are cached in-process and **shared between callers: treat them as read-only**.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from mtl_core.suites import SUITES
from mtl_core.suites.backbones import mlp_encoder
from mtl_core.suites.base import SuiteData

DATA_SEED = 0
INPUT_DIM = 100  # d, paper section 5.1
SCALE = 1.0  # c, from Google Research's generator (not in the paper)
ALPHAS = np.arange(1, 11, dtype=np.float64)  # alpha_i = i, m = 10 (Google Research's generator)
BETAS = np.arange(10, dtype=np.float64) ** 2  # beta_i = (i - 1)^2 (Google Research's generator)
NOISE_STD = 0.1  # the paper's N(0, 0.01), read as a variance
VAL_SIZE = 2000


@functools.cache
def _basis() -> tuple[np.ndarray, np.ndarray]:
    """Two orthogonal unit vectors u1, u2 in R^d (a seeded random orthonormal pair)."""
    rng = np.random.default_rng([DATA_SEED, 0])
    q, _ = np.linalg.qr(rng.standard_normal((INPUT_DIM, 2)))
    return q[:, 0].copy(), q[:, 1].copy()


def task_weights(correlation: float) -> tuple[np.ndarray, np.ndarray]:
    """w1 = c u1 and w2 = c (p u1 + sqrt(1 - p^2) u2): two vectors of norm c with cosine p."""
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must be between -1 and 1 (got {correlation:g})")
    u1, u2 = _basis()
    return SCALE * u1, SCALE * (correlation * u1 + math.sqrt(max(0.0, 1.0 - correlation**2)) * u2)


def mmoe_label(x: np.ndarray, w: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """y = w.x + sum_i sin(alpha_i w.x + beta_i) + noise, for each row of ``x``."""
    projection = x @ w
    return projection + np.sin(np.outer(projection, ALPHAS) + BETAS).sum(axis=1) + noise


def _examples(n: int, correlation: float, stream: int) -> tuple[Tensor, Tensor, Tensor]:
    rng = np.random.default_rng([DATA_SEED, stream])
    x = rng.standard_normal((n, INPUT_DIM))
    noise = rng.normal(0.0, NOISE_STD, size=(2, n))
    w1, w2 = task_weights(correlation)
    y1, y2 = mmoe_label(x, w1, noise[0]), mmoe_label(x, w2, noise[1])
    return tuple(torch.from_numpy(a.astype(np.float32)) for a in (x, y1, y2))


@functools.lru_cache(maxsize=16)
def _synthetic_tensors(correlation: float, train_size: int) -> tuple[Tensor, ...]:
    # Separate streams: the validation set does not change with train_size.
    return (*_examples(train_size, correlation, 1), *_examples(VAL_SIZE, correlation, 2))


def build_synthetic(correlation: float = 0.5, train_size: int = 100000) -> SuiteData:
    """Tasks ``y1`` and ``y2`` (regression, MSE); input ``[N, 100]``; 2,000 validation examples.

    Tensors are shared between callers: read-only.
    """
    correlation, train_size = float(correlation), int(train_size)
    task_weights(correlation)  # validates the range
    if train_size < 1:
        raise ValueError(f"train_size must be at least 1 (got {train_size})")
    x_train, y1_train, y2_train, x_val, y1_val, y2_val = _synthetic_tensors(correlation, train_size)
    return SuiteData(
        info=SUITES["synthetic"],
        x_train=x_train,
        y_train={"y1": y1_train, "y2": y2_train},
        x_val=x_val,
        y_val={"y1": y1_val, "y2": y2_val},
        make_encoder=lambda: mlp_encoder(INPUT_DIM),
    )
