"""MultiMNIST and MultiFashion: the placement pixel for pixel, the offline subset, the pairs, and the
downloads (served from tmp_path as file:// URLs, or failing like a machine without network)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from mtl_core.__main__ import main
from mtl_core.architectures.parts import split_stages, stage_shapes
from mtl_core.runs import settings
from mtl_core.suites import SUITES, build_suite, downloads, mnist
from mtl_core.suites.backbones import lenet_encoder
from mtl_core.suites.downloads import DataUnavailable


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache folder, and no test leaves a fake data set in the caches."""
    monkeypatch.setenv("MTL_DATA", str(tmp_path / "cache"))
    yield tmp_path / "cache"
    for cached in (mnist.load_downloaded, mnist.load_images, mnist._pair_tensors):
        cached.cache_clear()


def _random_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


# --- placement and resize ------------------------------------------------------------------------

@pytest.mark.parametrize(("canvas", "overlap"), [(36, 22), (56, 0), (28, 28), (40, 22), (50, 10)])
def test_the_right_image_sits_28_minus_overlap_down_and_right_and_the_brighter_pixel_wins(canvas, overlap):
    left, right = _random_images(3, 1), _random_images(3, 2)
    placed = mnist.place_pair(left, right, canvas, overlap)
    shift = 28 - overlap
    expected = np.zeros((3, canvas, canvas), dtype=np.uint8)
    for i in range(3):
        for r in range(28):
            for c in range(28):
                expected[i, r, c] = left[i, r, c]
        for r in range(28):
            for c in range(28):
                expected[i, shift + r, shift + c] = max(expected[i, shift + r, shift + c], right[i, r, c])
    assert placed.shape == (3, canvas, canvas) and placed.dtype == np.uint8
    assert np.array_equal(placed, expected)


def test_the_papers_geometry_left_at_0_right_at_6():
    left, right = np.zeros((1, 28, 28), np.uint8), np.zeros((1, 28, 28), np.uint8)
    left[0, 0, 0], right[0, 0, 0], right[0, 27, 27] = 10, 20, 30
    left[0, 10, 10], right[0, 4, 4] = 200, 100  # the same canvas pixel (10, 10): the brighter wins
    placed = mnist.place_pair(left, right)[0]
    assert placed[0, 0] == 10 and placed[6, 6] == 20 and placed[33, 33] == 30 and placed[10, 10] == 200
    assert placed.shape == (36, 36) and np.count_nonzero(placed) == 4


def test_a_canvas_too_small_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match="cannot hold two 28-pixel images that share 22 pixels: make the canvas at least 34"):
        SUITES["multimnist"].validate_params({"canvas": 33, "overlap": 22})
    assert SUITES["multimnist"].validate_params({"canvas": 34, "overlap": 22})["canvas"] == 34
    with pytest.raises(ValueError, match="at least 34"):
        mnist.place_pair(_random_images(1, 0), _random_images(1, 1), canvas=33, overlap=22)


@pytest.mark.parametrize("side", [29, 36, 56])
def test_the_resize_is_torchs_antialiased_bilinear_and_stays_in_0_1(side):
    canvases = _random_images(4, side)[:, :1, :1].repeat(side, 1).repeat(side, 2)  # [4, side, side]
    canvases[:, ::3, ::2] = 255
    expected = F.interpolate(torch.from_numpy(canvases).float().unsqueeze(1) / 255, size=(28, 28),
                             mode="bilinear", align_corners=False, antialias=True)
    got = mnist.to_network_input(canvases)
    assert got.shape == (4, 1, 28, 28) and got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=1e-5)
    assert got.min() >= 0.0 and got.max() <= 1.0


def test_a_28_pixel_canvas_is_only_scaled():
    canvases = _random_images(2, 3)
    assert torch.equal(mnist.to_network_input(canvases), torch.from_numpy(canvases).float().unsqueeze(1) / 255)


# --- the offline subset and the pairs ------------------------------------------------------------

def test_the_subset_is_5000_real_digits_split_4000_1000_disjoint_and_stratified():
    images, labels = mnist.load_subset_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8 and images.max() == 255
    assert np.bincount(labels).tolist() == [500] * 10
    assert not images.flags.writeable
    train_idx, held_out_idx = mnist.stratified_split(labels, 1000)
    assert len(train_idx) == 4000 and len(held_out_idx) == 1000
    assert not set(train_idx) & set(held_out_idx) and len(set(train_idx) | set(held_out_idx)) == 5000
    assert np.bincount(labels[held_out_idx]).tolist() == [100] * 10
    split = mnist.load_images("mnist", "subset")
    assert split.train.shape == (4000, 28, 28) and split.held_out.shape == (1000, 28, 28)
    held_out = {image.tobytes() for image in split.held_out}
    assert not any(image.tobytes() in held_out for image in split.train)  # no held-out image is trained on


def test_the_split_hits_the_count_when_classes_do_not_divide_evenly():
    labels = np.array([0] * 7 + [1] * 5 + [2] * 3)
    train_idx, held_out_idx = mnist.stratified_split(labels, 4)
    assert len(held_out_idx) == 4 and len(train_idx) == 11
    assert np.bincount(labels[held_out_idx], minlength=3).tolist() == [2, 1, 1]


def test_a_small_suite_has_the_networks_shapes_and_independent_labels():
    small = build_suite("multimnist", SUITES["multimnist"].extra["small"])
    assert small.x_train.shape == (500, 1, 28, 28) and small.x_val.shape == (2000, 1, 28, 28)
    assert small.x_train.dtype == small.x_val.dtype == torch.float32
    assert small.x_train.min() >= 0.0 and small.x_train.max() <= 1.0
    for y in (*small.y_train.values(), *small.y_val.values()):
        assert y.dtype == torch.long and set(y.unique().tolist()) <= set(range(10))
    left, right = small.y_val["left"].double(), small.y_val["right"].double()
    assert abs(torch.corrcoef(torch.stack([left, right]))[0, 1]) < 0.1  # drawn independently
    assert (left == right).double().mean() < 0.2  # about 1 in 10 by chance
    bigger = build_suite("multimnist", {"train_pairs": 700})
    assert torch.equal(bigger.x_val, small.x_val) and torch.equal(bigger.y_val["left"], small.y_val["left"])
    assert build_suite("multimnist", {"train_pairs": 700}) is not bigger  # a fresh SuiteData...
    assert build_suite("multimnist", {"train_pairs": 700}).x_train is bigger.x_train  # ...on cached tensors


def test_each_label_belongs_to_the_image_placed_there():
    """With no overlap on a 56-pixel canvas, each quadrant of the 28x28 input is one image shrunk by 2."""
    data = build_suite("multimnist", {"canvas": 56, "overlap": 0, "train_pairs": 500})
    held_out = mnist.load_images("mnist", "subset")
    for corner, task in ((np.s_[:28, :28], "left"), (np.s_[28:, 28:], "right")):
        alone = np.zeros((len(held_out.held_out), 56, 56), dtype=np.uint8)
        alone[(slice(None), *corner)] = held_out.held_out
        quadrant = (slice(None), *(np.s_[:14, :14] if task == "left" else np.s_[14:, 14:]))
        shrunk = mnist.to_network_input(alone)[:, 0][quadrant].reshape(len(alone), -1)
        seen = data.x_val[:30, 0][quadrant].reshape(30, -1)
        nearest = torch.cdist(seen, shrunk).min(dim=1)
        assert nearest.values.max() < 0.05  # only the other image's blank corner can leak in
        assert torch.equal(torch.from_numpy(held_out.held_out_labels[nearest.indices.numpy()]), data.y_val[task][:30])


def test_the_lenet_trunk_cuts_into_the_papers_three_layers():
    encoder, features = lenet_encoder()
    stages = split_stages(encoder)
    assert features == 50 and len(stages) == 3
    assert stage_shapes(stages, (1, 28, 28)) == [(10, 12, 12), (20, 4, 4), (50,)]
    assert sum(p.numel() for p in encoder.parameters()) == (250 + 10) + (5000 + 20) + (16000 + 50)


# --- downloads -------------------------------------------------------------------------------------

def _idx(array: np.ndarray) -> bytes:
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """A tiny MNIST (30 training, 20 test images) served from file:// URLs, its MD5s in the table."""
    return fake_set("mnist", tmp_path, monkeypatch)


def fake_set(name: str, tmp_path, monkeypatch) -> downloads.DataSet:
    """Set ``name`` (mnist or fashion) replaced by a tiny one served from file:// URLs."""
    server = tmp_path / f"server-{name}"
    server.mkdir()
    contents = {"train-images-idx3-ubyte.gz": _idx(_random_images(30, 5)),
                "train-labels-idx1-ubyte.gz": _idx(np.arange(30) % 10),
                "t10k-images-idx3-ubyte.gz": _idx(_random_images(20, 6)),
                "t10k-labels-idx1-ubyte.gz": _idx(np.arange(20) % 10)}
    files = []
    for file in downloads.DATASETS[name].files:
        (server / file.name).write_bytes(contents[file.name])
        files.append(dataclasses.replace(file, md5=hashlib.md5(contents[file.name]).hexdigest(),
                                         size=len(contents[file.name])))
    fake = dataclasses.replace(downloads.DATASETS[name], mirrors=(server.as_uri() + "/",), files=tuple(files))
    monkeypatch.setitem(downloads.DATASETS, name, fake)
    return fake


def _offline(url: str):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_a_download_reports_its_bytes_and_ends_at_the_total(fake_mnist, data_cache):
    calls: list[tuple[int, int]] = []
    folder = downloads.download("mnist", progress=lambda done, total: calls.append((done, total)))
    assert folder == data_cache / "mnist"
    total = sum(file.size for file in fake_mnist.files)
    assert calls and calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(
        file.name for file in fake_mnist.files)
    assert not list(folder.glob("*.part"))
    assert downloads.is_complete("mnist")


def test_a_second_download_uses_the_cache_and_a_checked_file_is_not_hashed_again(fake_mnist, monkeypatch):
    downloads.download("mnist")
    monkeypatch.setattr(downloads, "open_url", lambda url: pytest.fail(f"fetched {url} again"))
    calls = []
    downloads.download("mnist", progress=lambda *a: calls.append(a))
    assert calls == []
    monkeypatch.setattr(downloads, "_md5", lambda path: pytest.fail(f"hashed {path} again"))
    assert set(downloads.cached_files("mnist")) == {file.name for file in fake_mnist.files}


def test_a_corrupt_download_is_one_sentence_and_leaves_nothing_in_the_cache(fake_mnist, monkeypatch, data_cache):
    wrong = dataclasses.replace(fake_mnist.files[0], md5="0" * 32)
    monkeypatch.setitem(downloads.DATASETS, "mnist",
                        dataclasses.replace(fake_mnist, files=(wrong, *fake_mnist.files[1:])))
    with pytest.raises(DataUnavailable) as caught:
        downloads.download("mnist")
    message = str(caught.value)
    assert "train-images-idx3-ubyte.gz" in message and f"expected {'0' * 32}, got {fake_mnist.files[0].md5}" in message
    assert "download it again" in message and "\n" not in message
    assert not [p for p in (data_cache / "mnist").iterdir() if not p.name.startswith(".verified")]


def test_a_file_changed_in_the_cache_is_checked_again(fake_mnist, data_cache):
    downloads.download("mnist")
    labels = data_cache / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes() + b"x")
    with pytest.raises(DataUnavailable, match="t10k-labels-idx1-ubyte.gz is corrupt"):
        downloads.cached_files("mnist")
    downloads.download("mnist")  # fetches the spoilt file again
    assert downloads.is_complete("mnist")


def test_without_network_the_sentence_names_the_urls_and_the_folder(monkeypatch, data_cache):
    monkeypatch.setattr(downloads, "open_url", _offline)
    with pytest.raises(DataUnavailable) as caught:
        downloads.download("mnist")
    message = str(caught.value)
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert str(data_cache / "mnist") in message and "source=subset" in message and "\n" not in message
    assert not list((data_cache / "mnist").iterdir())  # no half-written file left behind
    with pytest.raises(DataUnavailable, match="fashion-mnist.s3-website.eu-central-1.amazonaws.com"):
        downloads.download("fashion")


def test_the_full_source_with_an_empty_cache_says_what_to_download_and_where():
    with pytest.raises(DataUnavailable) as caught:
        build_suite("multimnist", {"source": "full", "train_pairs": 500})
    message = str(caught.value)
    assert "python -m mtl_core data download mnist" in message and "source=subset" in message
    assert str(downloads.dataset_dir("mnist")) in message
    with pytest.raises(DataUnavailable, match="data download fashion"):
        build_suite("multifashion", {"train_pairs": 500})  # both of its sources need the download


def test_the_full_source_reads_the_downloaded_files(fake_mnist):
    downloads.download("mnist")
    data = build_suite("multimnist", {"source": "full", "train_pairs": 500})
    assert data.x_train.shape == (500, 1, 28, 28) and data.x_val.shape == (2000, 1, 28, 28)
    assert set(data.y_val["left"].tolist()) <= set(range(10))
    split = mnist.load_images("mnist", "full")
    assert split.train.shape == (30, 28, 28) and split.held_out.shape == (20, 28, 28)  # train / t10k
    assert split.train_labels.tolist() == [i % 10 for i in range(30)]


def test_the_data_folder_follows_mtl_data_then_xdg(monkeypatch, tmp_path):
    assert downloads.cache_dir({"MTL_DATA": str(tmp_path / "d")}) == tmp_path / "d"
    assert downloads.cache_dir({"XDG_CACHE_HOME": str(tmp_path / "x")}) == tmp_path / "x" / "mtl-playground"
    assert downloads.cache_dir({}) == Path.home() / ".cache" / "mtl-playground"
    (tmp_path / "file").write_text("")
    assert "must name a folder" in settings.problems({"MTL_DATA": str(tmp_path / "file")})[0]
    assert settings.problems({"MTL_DATA": str(tmp_path / "not-yet")}) == []


# --- the command line ----------------------------------------------------------------------------

def test_data_download_draws_a_bar_and_exits_0(fake_mnist, capsys):
    assert main(["data", "download", "mnist"]) == 0
    err = capsys.readouterr().err
    assert "100%" in err and "downloaded and checked" in err
    assert main(["data", "download", "mnist"]) == 0
    assert "already in" in capsys.readouterr().err
    assert main(["data", "where"]) == 0
    out = capsys.readouterr().out
    assert str(downloads.cache_dir()) in out and "complete" in out and "missing 4 of 4" in out  # mnist, fashion


def test_data_download_offline_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(downloads, "open_url", _offline)
    assert main(["data", "download", "mnist"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot download MNIST") and "Traceback" not in err


def test_multifashion_builds_from_the_downloaded_set(tmp_path, monkeypatch):
    fake_set("fashion", tmp_path, monkeypatch)
    downloads.download("fashion")
    data = build_suite("multifashion", {"source": "full", "train_pairs": 500})
    assert data.x_train.shape == (500, 1, 28, 28) and data.info.task_names == ("left", "right")
    assert float(data.x_train.min()) >= 0.0 and float(data.x_train.max()) <= 1.0


# --- the Train page offers the download, with a progress bar -------------------------------------------

def test_the_train_page_offers_a_missing_download_and_trains_only_once_it_is_there(tmp_path, monkeypatch,
                                                                                   mtl_store):
    from streamlit.testing.v1 import AppTest

    from mtl_core.config import RunConfig

    def train_page() -> AppTest:
        at = AppTest.from_file("../app.py", default_timeout=60).switch_page("pages/train.py")
        at.query_params.update(RunConfig.parse({"suite": "multifashion"}).to_query())
        return at.run()

    online = downloads.open_url
    monkeypatch.setattr(downloads, "open_url", _offline)
    at = train_page()
    assert any("need Fashion-MNIST" in w.value for w in at.warning)
    assert next(b for b in at.button if b.label == "Train").disabled  # a run would only fail
    next(b for b in at.button if b.label == "Download Fashion-MNIST").click().run()
    assert not at.exception
    assert any("fashion-mnist.s3-website" in e.value and "\n" not in e.value for e in at.error)

    monkeypatch.setattr(downloads, "open_url", online)  # back online, with a tiny fake set to fetch
    fake_set("fashion", tmp_path, monkeypatch)
    next(b for b in at.button if b.label == "Download Fashion-MNIST").click().run()
    assert not at.exception and downloads.is_complete("fashion")
    assert not any("need Fashion-MNIST" in w.value for w in at.warning)
    assert not next(b for b in at.button if b.label == "Train").disabled
