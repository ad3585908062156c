"""Downloaded data sets (MNIST, Fashion-MNIST): where they are kept, fetching them once, checking them.

Each set is the four gzipped idx files of its publishers, checked against the MD5 sums that
torchvision (and, for Fashion-MNIST, its README) publish. They live in one folder per set under
the cache folder: ``$MTL_DATA``, else ``$XDG_CACHE_HOME/mtl-playground``, else
``~/.cache/mtl-playground``. A file is written under a temporary name, checked, then renamed, so
the cache never holds a half-written or corrupt file under its real name; a file in the cache is
hashed once and the result kept in a small marker beside it, so loading a set later costs no hash.

Everything a person can cause (no network, a missing or corrupt file) raises
:class:`DataUnavailable`, a ``ValueError`` whose message is one sentence saying what to do: the
worker shows it as the run's failure message, the CLI as its one line. No torch here: the CLI's
``data`` command imports this module alone.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

ENV_VAR = "MTL_DATA"
APP_FOLDER = "mtl-playground"
MARKER = ".verified.json"
TIMEOUT_S = 30.0
CHUNK = 1 << 16

Progress = Callable[[int, int], None]  # (bytes done, bytes in all) over the files being fetched


class DataUnavailable(ValueError):
    """A data set is not in the cache and cannot be fetched, or a file of it is corrupt."""


@dataclass(frozen=True)
class DataFile:
    name: str
    md5: str
    size: int  # bytes, as published: only for the progress bar (the MD5 is the check)


@dataclass(frozen=True)
class DataSet:
    key: str  # the folder under the cache folder, and the CLI's name for it
    title: str
    mirrors: tuple[str, ...]  # base URLs, tried in order
    files: tuple[DataFile, ...]
    alternative: str  # ends the "cannot get it" sentence: what works without it

    def urls(self, file: DataFile) -> list[str]:
        return [base + file.name for base in self.mirrors]


# MD5 sums and sizes: torchvision.datasets.MNIST.resources (and its mirrors, ossci first: LeCun's
# own site now answers 403), torchvision.datasets.FashionMNIST.resources and the Fashion-MNIST README.
DATASETS: dict[str, DataSet] = {
    "mnist": DataSet(
        key="mnist",
        title="MNIST",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        files=(DataFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422),
               DataFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28_881),
               DataFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1_648_877),
               DataFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4_542)),
        alternative=", or use source=subset, whose 5,000 digits need no download",
    ),
    "fashion": DataSet(
        key="fashion",
        title="Fashion-MNIST",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        files=(DataFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26_421_880),
               DataFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", 29_515),
               DataFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", 4_422_102),
               DataFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", 5_148)),
        alternative=" (MultiFashion needs them for either source)",
    ),
}


def dataset(name: str) -> DataSet:
    if name not in DATASETS:
        raise DataUnavailable(f"no data set {name!r} (known: {', '.join(DATASETS)})")
    return DATASETS[name]


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder that holds one subfolder per downloaded set."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(ENV_VAR, "").strip()
    if chosen:
        return Path(chosen).expanduser().absolute()
    xdg = environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / APP_FOLDER).absolute()


def dataset_dir(name: str) -> Path:
    return cache_dir() / dataset(name).key


def missing_files(name: str) -> list[str]:
    """The files of set ``name`` not in the cache (present ones are not checked here)."""
    folder = dataset_dir(name)
    return [file.name for file in dataset(name).files if not (folder / file.name).is_file()]


def cached_files(name: str) -> dict[str, Path]:
    """The paths of set ``name``'s four files, each checked against its MD5 (hashed once, then
    remembered). Raises DataUnavailable, saying how to get them, when one is missing or corrupt."""
    data, folder = dataset(name), dataset_dir(name)
    missing = missing_files(name)
    if missing:
        which = "none of its files" if len(missing) == len(data.files) else ", ".join(missing)
        raise DataUnavailable(
            f"{data.title} is not downloaded ({which} in {folder}): run "
            f"`python -m mtl_core data download {data.key}`, or {_by_hand(data, folder)}{data.alternative}.")
    for file in data.files:
        got = _verified_md5(folder, file)
        if got != file.md5:
            raise DataUnavailable(
                f"{folder / file.name} is corrupt (MD5 expected {file.md5}, got {got}): download it "
                f"again (`python -m mtl_core data download {data.key}` replaces it).")
    return {file.name: folder / file.name for file in data.files}


def is_complete(name: str) -> bool:
    """All four files present and matching their checksums."""
    try:
        cached_files(name)
    except DataUnavailable:
        return False
    return True


def open_url(url: str) -> BinaryIO:
    """The response for ``url`` (tests replace this to serve fake files or fail like no network)."""
    return urllib.request.urlopen(url, timeout=TIMEOUT_S)


def download(name: str, progress: Progress | None = None) -> Path:
    """Fetch whatever of set ``name`` is missing (or corrupt) in the cache; returns its folder.

    ``progress(done_bytes, total_bytes)`` is called as bytes arrive, over all the files being
    fetched, and last with ``done == total``. Files already in the cache and matching their MD5 are
    never fetched again. Raises DataUnavailable when no mirror answers or a file arrives corrupt.
    """
    data, folder = dataset(name), dataset_dir(name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataUnavailable(f"cannot create the folder {folder} ({error.strerror}): set {ENV_VAR} to a "
                              f"folder you can write, or {_by_hand(data, folder)}.") from None
    wanted = [file for file in data.files if not _is_good(folder, file)]
    meter = _Meter(sum(file.size for file in wanted), progress)
    for file in wanted:
        _fetch(data, file, folder, meter)
    meter.finish()
    return folder


def _fetch(data: DataSet, file: DataFile, folder: Path, meter: _Meter) -> None:
    """Try each mirror in turn; write to a temporary file, check its MD5, rename it into place."""
    reasons = []
    for url in data.urls(file):
        try:
            handle, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{file.name}.", suffix=".part")
        except OSError as error:
            raise DataUnavailable(f"cannot write in {folder} ({error.strerror}): set {ENV_VAR} to a folder "
                                  f"you can write, or {_by_hand(data, folder)}.") from None
        temp = Path(temp_name)
        meter.begin_file(file.size)
        try:
            digest = hashlib.md5(usedforsecurity=False)
            with os.fdopen(handle, "wb") as out, open_url(url) as response:
                meter.expect(_content_length(response))
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    meter.add(len(chunk))
        except (OSError, http.client.HTTPException) as error:  # no network, a 403, a cut connection
            temp.unlink(missing_ok=True)
            meter.abandon_file()
            reasons.append(_reason(error))
            continue
        got = digest.hexdigest()
        if got != file.md5:
            temp.unlink(missing_ok=True)
            raise DataUnavailable(f"{file.name} from {url} is corrupt (MD5 expected {file.md5}, got {got}): "
                                  f"download it again (`python -m mtl_core data download {data.key}`).")
        os.replace(temp, folder / file.name)
        _remember(folder, file, got)
        return
    raise DataUnavailable(f"cannot download {data.title} ({reasons[0] if reasons else 'no mirror'}): "
                          f"{_by_hand(data, folder)}{data.alternative}.")


# --- checked once, then remembered ---------------------------------------------------------------

def _is_good(folder: Path, file: DataFile) -> bool:
    return (folder / file.name).is_file() and _verified_md5(folder, file) == file.md5


def _verified_md5(folder: Path, file: DataFile) -> str:
    """The file's MD5: from the marker when the file has not changed since it was hashed (same
    size and modification time), else hashed now and remembered when it is right."""
    path = folder / file.name
    stat = path.stat()
    known = _marker(folder).get(file.name)
    if isinstance(known, dict) and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
        return str(known.get("md5"))
    got = _md5(path)
    if got == file.md5:
        _remember(folder, file, got)
    return got


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _marker(folder: Path) -> dict[str, object]:
    try:
        found = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _remember(folder: Path, file: DataFile, md5: str) -> None:
    """Record a checked file in the marker (written whole and renamed: a reader never sees half).
    A cache we cannot write to (a shared read-only copy) is fine: the file is hashed next time."""
    stat = (folder / file.name).stat()
    entries = _marker(folder)
    entries[file.name] = {"md5": md5, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        handle, temp = tempfile.mkstemp(dir=folder, prefix=f"{MARKER}.", suffix=".part")
        with os.fdopen(handle, "w") as out:
            json.dump(entries, out, indent=1, sort_keys=True)
        os.replace(temp, folder / MARKER)
    except OSError:
        pass


# --- messages and progress ------------------------------------------------------------------------

def _by_hand(data: DataSet, folder: Path) -> str:
    names = [file.name for file in data.files]
    return (f"download {', '.join(names[:-1])} and {names[-1]} from {data.mirrors[0]} "
            f"(or {', '.join(data.mirrors[1:])}) and put them in {folder}")


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
    return " ".join(str(reason).split()) or type(error).__name__


def _content_length(response: object) -> int | None:
    headers = getattr(response, "headers", None)
    length = headers.get("Content-Length") if headers is not None else None
    try:
        return int(length) if length is not None else None
    except ValueError:
        return None


class _Meter:
    """Bytes done over bytes expected, across files; a server's Content-Length corrects the
    published size, and a mirror that fails part-way gives its bytes back."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.done, self.progress = total, 0, progress
        self.published = self.in_file = self.correction = 0

    def begin_file(self, published: int) -> None:
        self.published, self.in_file, self.correction = published, 0, 0

    def expect(self, announced: int | None) -> None:
        if announced is not None:
            self.correction = announced - self.published
            self.total += self.correction

    def add(self, n: int) -> None:
        self.done += n
        self.in_file += n
        self.total = max(self.total, self.done)
        if self.progress is not None:
            self.progress(self.done, self.total)

    def abandon_file(self) -> None:
        self.done -= self.in_file
        self.total -= self.correction
        self.in_file = self.correction = 0

    def finish(self) -> None:
        if self.progress is not None and (self.total or self.done):
            self.total = self.done
            self.progress(self.done, self.total)
