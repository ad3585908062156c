"""The task suites: shapes, held-out digits, targets checked by hand, the MMoE correlation knob."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from mtl_core.suites import SUITES, build_suite, synthetic
from mtl_core.suites import digits as digit_suites
from mtl_core.suites.digits import (
    build_digit_attributes,
    build_multidigits,
    digit_attributes,
    digit_split,
    load_raw_digits,
    overlay_pairs,
    shifted_copies,
)
from mtl_core.suites.synthetic import build_synthetic, mmoe_label, task_weights
from tests.suite_support import OFFLINE


def _image_keys(images: torch.Tensor | np.ndarray) -> set[bytes]:
    """Each image as bytes: two images are the same image exactly when their keys are equal."""
    array = np.asarray(images, dtype=np.float32)
    return {row.tobytes() for row in array.reshape(len(array), -1)}


# --- every suite ----------------------------------------------------------------------------

EXPECTED_INPUT = {"multidigits": (1, 8, 11), "digit_attributes": (1, 8, 8), "synthetic": (100,),
                  "multimnist": (1, 28, 28), "penguins": (5,), "wine": (11,)}


@pytest.mark.parametrize("key", OFFLINE)
def test_default_suite_has_the_registered_tasks_shapes_and_label_ranges(key):
    suite = build_suite(key)
    assert suite.input_shape == EXPECTED_INPUT[key]
    assert suite.x_train.dtype == suite.x_val.dtype == torch.float32
    assert set(suite.y_train) == set(suite.y_val) == set(suite.info.task_names)
    for task in suite.info.tasks:
        for x, y in ((suite.x_train, suite.y_train[task.name]), (suite.x_val, suite.y_val[task.name])):
            assert y.shape == (x.shape[0],)
            if task.kind == "classification":
                assert y.dtype == torch.long
                assert set(y.unique().tolist()) == set(range(task.n_outputs))
            else:
                assert y.dtype == torch.float32 and torch.isfinite(y).all()
    if SUITES[key].input_kind == "image":
        assert suite.x_train.min() == 0.0 and suite.x_train.max() == 1.0


@pytest.mark.parametrize("key", OFFLINE)
def test_default_encoder_takes_the_suite_input(key):
    suite = build_suite(key)
    encoder, features = suite.make_encoder()
    assert encoder(suite.x_val[:5]).shape == (5, features)


def test_sizes_follow_the_knobs():
    assert build_suite("multidigits", {"train_pairs": 700}).x_train.shape[0] == 700
    assert build_suite("multidigits", {"train_pairs": 700}).x_val.shape[0] == 2000
    assert build_suite("synthetic", {"train_size": 600}).x_train.shape == (600, 100)
    assert build_suite("synthetic", {"train_size": 600}).x_val.shape == (2000, 100)


def test_metrics_on_hand_made_predictions():
    multi, attributes, synth = build_suite("multidigits"), build_suite("digit_attributes"), build_suite("synthetic")
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert multi.metric("left", logits, torch.tensor([0, 0, 0, 2])) == pytest.approx(0.75)
    prediction, target = torch.tensor([[1.0], [2.0], [3.0], [-1.0]]), torch.tensor([1.0, 1.0, 1.0, 1.0])
    assert attributes.metric("ink", prediction, target) == pytest.approx((0 + 1 + 2 + 2) / 4)
    assert synth.metric("y1", prediction, target) == pytest.approx((0 + 1 + 4 + 4) / 4)
    assert synth.loss("y2", prediction, target).item() == pytest.approx((0 + 1 + 4 + 4) / 4)


def test_builds_are_deterministic_and_cached():
    first = [build_multidigits(5, 1000), build_digit_attributes(), build_synthetic(0.3, 800)]
    digit_suites._multidigits_tensors.cache_clear()
    digit_suites._attribute_tensors.cache_clear()
    synthetic._synthetic_tensors.cache_clear()
    second = [build_multidigits(5, 1000), build_digit_attributes(), build_synthetic(0.3, 800)]
    for a, b in zip(first, second, strict=True):
        assert a.x_train is not b.x_train  # really rebuilt ...
        assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_val, b.x_val)  # ... and equal
        for task in a.y_train:
            assert torch.equal(a.y_train[task], b.y_train[task])
            assert torch.equal(a.y_val[task], b.y_val[task])
    start = time.perf_counter()
    third = build_multidigits(5, 1000)
    assert time.perf_counter() - start < 0.05 and third.x_train is second[0].x_train


def test_bad_settings_raise_value_errors():
    with pytest.raises(ValueError, match="correlation"):
        build_synthetic(1.5, 1000)
    with pytest.raises(ValueError, match="overlap"):
        build_multidigits(9, 1000)
    with pytest.raises(ValueError, match="train_size"):
        build_synthetic(0.0, 0)


# --- the digits and their split ----------------------------------------------------------------

def test_shipped_digits_are_scikit_learns_load_digits():
    from sklearn.datasets import load_digits

    images, labels = load_raw_digits()
    reference = load_digits()
    assert np.array_equal(images, reference.images) and np.array_equal(labels, reference.target)


def test_digit_split_is_a_stratified_80_20_partition():
    train_idx, held_out_idx = digit_split()
    _, labels = load_raw_digits()
    assert (len(train_idx), len(held_out_idx)) == (1438, 359)
    assert np.array_equal(np.sort(np.concatenate([train_idx, held_out_idx])), np.arange(1797))
    held_out_share = np.bincount(labels[held_out_idx], minlength=10) / np.bincount(labels, minlength=10)
    assert np.all(np.abs(held_out_share - 0.2) < 0.01)


# --- multidigits --------------------------------------------------------------------------------

def test_pixelwise_max_overlay_on_a_hand_example():
    left = np.zeros((1, 8, 8), dtype=np.float32)
    right = np.zeros((1, 8, 8), dtype=np.float32)
    left[0, 2, :] = 0.5  # a horizontal stroke across the left digit
    right[0, :, 0] = 1.0  # a vertical stroke in the right digit's first column
    right[0, 2, 1] = 0.25  # dimmer than the left stroke it lands on
    canvas = overlay_pairs(left, right, overlap=3)[0]
    assert canvas.shape == (8, 13)
    expected = np.zeros((8, 13), dtype=np.float32)
    expected[2, :8] = 0.5
    expected[:, 5] = 1.0  # right column 0 -> canvas column 8 - 3 = 5, brighter than 0.5
    expected[2, 6] = 0.5  # right column 1 -> canvas column 6: max(0.5, 0.25)
    assert np.array_equal(canvas, expected)


@pytest.mark.parametrize("overlap", [1, 3, 5, 7])
def test_overlap_sets_the_canvas_width_and_combines_with_pixelwise_max(overlap):
    # The pairs (which digits) do not depend on the overlap, and at overlap 0 the canvas halves
    # are the two digits as they are: so the overlap-0 canvas tells what every canvas must be.
    apart = build_multidigits(0, 500).x_val[:, 0]
    left, right = apart[:, :, :8], apart[:, :, 8:]
    canvas = build_multidigits(overlap, 500).x_val[:, 0]
    assert canvas.shape == (2000, 8, 16 - overlap)
    assert torch.equal(canvas[:, :, : 8 - overlap], left[:, :, : 8 - overlap])
    assert torch.equal(canvas[:, :, 8 - overlap: 8], torch.maximum(left[:, :, 8 - overlap:], right[:, :, :overlap]))
    assert torch.equal(canvas[:, :, 8:], right[:, :, overlap:])


def test_validation_pairs_are_made_of_held_out_digits_only():
    images, labels = load_raw_digits()
    train_idx, held_out_idx = digit_split()
    train_keys = _image_keys(images[train_idx] / 16)
    held_out_keys = _image_keys(images[held_out_idx] / 16)
    assert not train_keys & held_out_keys
    scaled = (images / 16).astype(np.float32)
    label_of = {image.tobytes(): int(label) for image, label in zip(scaled, labels, strict=True)}

    suite = build_multidigits(0, 2000)  # overlap 0: the two halves are the two digits as they are
    for x, y, pool in ((suite.x_train, suite.y_train, train_keys), (suite.x_val, suite.y_val, held_out_keys)):
        for side, half in (("left", x[:, 0, :, :8]), ("right", x[:, 0, :, 8:])):
            keys = [row.tobytes() for row in half.numpy()]
            assert set(keys) <= pool
            assert [label_of[k] for k in keys] == y[side].tolist()
    assert len({row.tobytes() for row in suite.x_val[:, 0, :, :8].numpy()}) > 300  # most held-out digits used


def test_validation_pairs_do_not_depend_on_the_number_of_training_pairs():
    a, b = build_multidigits(5, 600), build_multidigits(5, 2000)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.y_val["right"], b.y_val["right"])


def test_left_and_right_labels_are_independent_and_balanced():
    suite = build_multidigits(5, 20000)
    left, right = suite.y_train["left"].numpy(), suite.y_train["right"].numpy()
    assert abs(np.corrcoef(left, right)[0, 1]) < 0.03
    assert np.all(np.abs(np.bincount(left) / len(left) - 0.1) < 0.015)


# --- digit attributes ---------------------------------------------------------------------------

def test_attributes_of_hand_drawn_images():
    diagonal = np.zeros((8, 8))
    diagonal[np.arange(8), 7 - np.arange(8)] = 16.0  # bottom-left to top-right: leans right going up
    vertical = np.zeros((8, 8))
    vertical[:, 3] = 8.0
    blob = np.zeros((8, 8))
    blob[1, 2] = blob[5, 2] = 16.0  # two fully inked pixels, rows 1 and 5
    out = digit_attributes(np.stack([diagonal, vertical, blob]), np.array([7, 4, 5]))
    assert out["parity"].tolist() == [1, 0, 1] and out["large"].tolist() == [1, 0, 1]
    assert out["ink"] == pytest.approx([8.0, 4.0, 2.0])
    assert out["centre"] == pytest.approx([3.5, 3.5, 3.0])
    assert out["slant"][:2] == pytest.approx([1.0, 0.0])
    sheared = np.zeros((8, 8))
    sheared[np.arange(8), (7 - np.arange(8)) // 2] = 16.0  # half a column right per row up
    assert digit_attributes(sheared[None], np.array([1]))["slant"][0] == pytest.approx(0.5, abs=0.05)


def test_attribute_targets_match_the_images_and_classes():
    suite = build_digit_attributes()
    rows = torch.arange(8, dtype=torch.float32)
    for x, y in ((suite.x_train, suite.y_train), (suite.x_val, suite.y_val)):
        assert torch.equal(y["parity"], y["digit"] % 2)
        assert torch.equal(y["large"], (y["digit"] >= 5).long())
        image = x[:, 0]
        ink = image.sum(dim=(1, 2))  # x = raw / 16, so this is sum(raw) / 16
        assert torch.allclose(y["ink"], ink, atol=1e-4)
        assert torch.allclose(y["centre"], (image.sum(dim=2) * rows).sum(dim=1) / ink, atol=1e-4)
    assert 15 < suite.y_train["ink"].mean() < 25 and 3.0 < suite.y_train["centre"].mean() < 4.0


def test_regression_targets_live_on_different_scales():
    y = build_digit_attributes().y_train
    variance = {name: y[name].var().item() for name in ("ink", "centre", "slant")}
    assert variance["ink"] > 20 * variance["centre"] > 20 * 5 * variance["slant"]
    assert variance["slant"] > 1e-3  # still a task, not a constant


def test_augmented_training_digits_are_exact_shifts_with_unchanged_targets():
    plain, augmented = build_digit_attributes(augment=False), build_digit_attributes()
    n = plain.x_train.shape[0]
    assert n == 1438 and augmented.x_train.shape[0] > 2.5 * n
    assert torch.equal(augmented.x_train[:n], plain.x_train)
    images, _ = load_raw_digits()
    source, moved = shifted_copies(images[digit_split()[0]])
    extra = augmented.x_train[n:, 0].numpy()
    assert np.allclose(extra, moved / 16)
    assert np.array_equal(moved.sum(axis=(1, 2)), images[digit_split()[0]][source].sum(axis=(1, 2)))  # no ink lost
    for name, target in augmented.y_train.items():
        assert torch.allclose(target[n:].float(), plain.y_train[name][torch.from_numpy(source)].float(), atol=1e-4), name
    assert not _image_keys(augmented.x_train[:, 0]) & _image_keys(augmented.x_val[:, 0])


# --- synthetic (MMoE) ---------------------------------------------------------------------------

@pytest.mark.parametrize("p", [-1.0, -0.3, 0.0, 0.6, 1.0])
def test_task_weights_have_norm_c_and_cosine_p(p):
    w1, w2 = task_weights(p)
    assert np.linalg.norm(w1) == pytest.approx(synthetic.SCALE)
    assert np.linalg.norm(w2) == pytest.approx(synthetic.SCALE)
    assert w1 @ w2 / synthetic.SCALE**2 == pytest.approx(p, abs=1e-12)


def test_label_correlation_grows_with_the_task_correlation():
    linear, labels = [], []
    for p in (-0.5, 0.0, 0.5, 0.9):
        suite = build_synthetic(p, 1000)
        x = suite.x_val.double().numpy()
        w1, w2 = task_weights(p)
        linear.append(np.corrcoef(x @ w1, x @ w2)[0, 1])
        labels.append(np.corrcoef(suite.y_val["y1"], suite.y_val["y2"])[0, 1])
    assert linear == pytest.approx([-0.5, 0.0, 0.5, 0.9], abs=0.05)
    assert all(b - a > 0.1 for a, b in zip(labels, labels[1:], strict=False))


def test_labels_follow_the_mmoe_formula_up_to_noise():
    suite = build_synthetic(0.5, 1000)
    x = suite.x_val.double().numpy()
    for task, w in zip(("y1", "y2"), task_weights(0.5), strict=True):
        residual = suite.y_val[task].double().numpy() - mmoe_label(x, w, np.zeros(len(x)))
        assert abs(residual.mean()) < 0.01 and residual.std() == pytest.approx(synthetic.NOISE_STD, rel=0.1)
    assert suite.y_train["y1"].var().item() > 3  # the sines make the label far from linear


def test_correlation_one_gives_the_same_task_up_to_noise():
    suite = build_synthetic(1.0, 1000)
    difference = (suite.y_val["y1"] - suite.y_val["y2"]).double()
    assert difference.std().item() == pytest.approx(math.sqrt(2) * synthetic.NOISE_STD, rel=0.1)
    assert difference.std().item() < 0.1 * suite.y_val["y1"].std().item()


def test_inputs_do_not_depend_on_the_correlation():
    a, b = build_synthetic(-0.2, 700), build_synthetic(0.8, 700)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_val, b.x_val)
    assert torch.equal(a.y_val["y1"], b.y_val["y1"]) and not torch.equal(a.y_val["y2"], b.y_val["y2"])
