"""The IDX reader, image folders, the embedded sample, and the downloader (local HTTP server)."""

import gzip
import hashlib
import http.server
import threading
import time
from functools import partial

import numpy as np
import pytest

from glassnet.data.idx import parse_idx, read_idx, write_idx
from glassnet.data.images import MNIST_FILES, download_mnist, load_idx_folder, load_images
from glassnet.errors import UserError


def make_idx_folder(folder, n_train=40, n_test=20, n_classes=10, seed=0, gz=True):
    """Write a tiny MNIST-layout data set: class k is a bright bar at row 2k."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % n_classes
        x = rng.integers(0, 30, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(y):
            x[i, 2 * k + 2 : 2 * k + 4, 4:24] = 255
        suffix = ".gz" if gz else ""
        write_idx(folder / (MNIST_FILES[f"{split}_images"] + suffix), x)
        write_idx(folder / (MNIST_FILES[f"{split}_labels"] + suffix), y.astype(np.uint8))
    return folder


def test_roundtrip_raw_and_gz(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        np.testing.assert_array_equal(read_idx(write_idx(tmp_path / name, a)), a)


def test_header_bytes_by_hand():
    raw = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])
    np.testing.assert_array_equal(parse_idx(raw), [7, 8, 9])


@pytest.mark.parametrize(
    "raw, message",
    [
        (bytes([0, 1, 8, 1, 0, 0, 0, 1, 5]), "wrong magic number"),
        (bytes([0, 0, 0x0D, 1, 0, 0, 0, 1, 5]), "element type 0x0d"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 3, 7]), "truncated"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 1, 7, 8]), "trailing bytes"),
        (bytes([0, 0, 8, 2, 0, 0]), "truncated header"),
        (b"\x00", "too short"),
    ],
)
def test_bad_idx(raw, message):
    with pytest.raises(UserError, match=message):
        parse_idx(raw, "f.idx")


def test_truncated_gzip_and_missing(tmp_path):
    p = write_idx(tmp_path / "x.gz", np.zeros((10, 28, 28), np.uint8))
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(UserError, match="x.gz"):
        read_idx(p)
    with pytest.raises(UserError, match="not found"):
        read_idx(tmp_path / "none.gz")


def test_folder_direct_or_under_mnist_and_class_names(tmp_path):
    make_idx_folder(tmp_path / "a" / "mnist")
    d = load_idx_folder(tmp_path / "a")
    assert d.x_train.shape == (40, 28, 28) and d.classes == [str(i) for i in range(10)]
    make_idx_folder(tmp_path / "b", n_classes=3, gz=False)
    (tmp_path / "b" / "classes.txt").write_text("cat\ndog\nfish\n")
    d = load_idx_folder(tmp_path / "b")
    assert d.classes == ["cat", "dog", "fish"] and d.y_train.max() == 2


def test_folder_errors(tmp_path):
    folder = make_idx_folder(tmp_path / "c")
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(39, np.uint8))
    with pytest.raises(UserError, match="40 images but train-labels-idx1-ubyte.gz has 39"):
        load_idx_folder(folder)
    make_idx_folder(folder)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.full(20, 12, np.uint8))
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.gz: label 12 has no training"):
        load_idx_folder(folder, classes=[str(i) for i in range(10)])
    make_idx_folder(folder)
    with pytest.raises(UserError, match="train-labels-idx1-ubyte.gz: label 9 is beyond the 5"):
        load_idx_folder(folder, classes=[str(i) for i in range(5)])
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(UserError, match="missing t10k-images-idx3-ubyte"):
        load_idx_folder(folder)


def test_embedded_sample_is_used_without_data(tmp_path, monkeypatch):
    monkeypatch.delenv("GLASSNET_DATA", raising=False)
    monkeypatch.setenv("GLASSNET_CACHE", str(tmp_path / "empty-cache"))
    d = load_images()
    assert d.kind == "embedded-sample" and "5,000" in d.notes[0]
    assert len(d.y_train) == 4000 and len(d.y_test) == 1000
    assert np.bincount(d.y_test).tolist() == [100] * 10  # stratified


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=root))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def _publish(root, blobs):
    expected = {}
    for stem, data in blobs.items():
        (root / f"{stem}.gz").write_bytes(gzip.compress(data))
        expected[stem] = hashlib.sha256(data).hexdigest()
    return expected


def test_download_good_files(server, tmp_path):
    root, url = server
    blobs = {s: bytes([0, 0, 8, 1, 0, 0, 0, 2, i, i]) for i, s in enumerate(MNIST_FILES.values())}
    expected = _publish(root, blobs)
    dest = download_mnist(tmp_path / "cache", mirrors=[url], expected=expected)
    for stem, data in blobs.items():
        assert (dest / stem).read_bytes() == data
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_download_wrong_and_truncated_files_never_count(server, tmp_path):
    root, url = server
    blobs = {s: bytes([0, 0, 8, 1, 0, 0, 0, 1, i]) for i, s in enumerate(MNIST_FILES.values())}
    expected = _publish(root, blobs)
    stem = MNIST_FILES["train_images"]
    (root / f"{stem}.gz").write_bytes(gzip.compress(b"a different file"))
    with pytest.raises(UserError, match="checksum mismatch"):
        download_mnist(tmp_path / "c1", mirrors=[url], expected=expected)
    assert not (tmp_path / "c1" / stem).exists()
    (root / f"{stem}.gz").write_bytes(gzip.compress(blobs[stem])[:-8])  # truncated
    with pytest.raises(UserError, match=stem):
        download_mnist(tmp_path / "c2", mirrors=[url], expected=expected)
    assert not (tmp_path / "c2" / stem).exists()
    # A bad first mirror falls through to a good second one.
    (root / f"{stem}.gz").write_bytes(gzip.compress(blobs[stem]))
    dest = download_mnist(tmp_path / "c3", mirrors=[url + "missing/", url], expected=expected)
    assert (dest / stem).read_bytes() == blobs[stem]


def test_download_cli_with_mirror_and_errors(server, tmp_path, capsys, monkeypatch):
    from glassnet.cli import main
    from glassnet.data import images

    root, url = server
    blobs = {s: bytes([0, 0, 8, 1, 0, 0, 0, 1, i]) for i, s in enumerate(MNIST_FILES.values())}
    expected = _publish(root, blobs)
    monkeypatch.setattr(images, "MNIST_SHA256", expected)
    monkeypatch.setattr(
        images.download_mnist, "__defaults__", (None, images.MNIST_MIRRORS, expected, 60.0, None)
    )
    assert main(["data", "download", "mnist", "--to", str(tmp_path / "d"), "--mirror", url]) == 0
    assert "ready" in capsys.readouterr().out
    assert (tmp_path / "d" / MNIST_FILES["test_labels"]).read_bytes() == blobs[
        MNIST_FILES["test_labels"]
    ]
    (root / (MNIST_FILES["train_labels"] + ".gz")).unlink()
    assert main(["data", "download", "mnist", "--to", str(tmp_path / "e"), "--mirror", url]) == 2
    err = capsys.readouterr().err
    assert "could not download train-labels-idx1-ubyte" in err and len(err.splitlines()) == 1


_BOMB = gzip.compress(b"\0" * (50 << 20), compresslevel=9)  # ~50 KB that inflate to 50 MB


class _Hostile(http.server.BaseHTTPRequestHandler):
    """A mirror that misbehaves: /endless streams forever, /bomb.gz inflates far past its file's
    size, /slow sends a byte now and then."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        try:
            if "endless" in self.path:
                while True:
                    self.wfile.write(b"\0" * 65536)
            elif "bomb" in self.path:
                self.wfile.write(_BOMB)
            else:
                for _ in range(200):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.mark.parametrize("path, message, expect", [
    ("endless/", "larger than the expected", 10_000),
    ("bomb/", "decompresses past the expected", 10_000),
    ("slow/", "not complete after 1 s", 10_000),
])  # fmt: skip
def test_download_limits_hold_whatever_the_mirror_sends(tmp_path, path, message, expect):
    import tracemalloc

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{path}"
    stem = MNIST_FILES["train_labels"]
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(UserError, match=message):
            download_mnist(tmp_path / "c", mirrors=[url], expected={stem: "0" * 64},
                           sizes={stem: expect}, deadline=1.0)  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        httpd.shutdown()
    assert peak < 8 << 20  # bounded: never the stream, never the inflated bomb
    assert time.monotonic() - t0 < 30
    assert [p.name for p in (tmp_path / "c").iterdir()] == []  # nothing left behind
