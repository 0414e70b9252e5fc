"""Readers that never crash: seeded fuzzing of the IDX, regression CSV and image readers.

Each reader gets N_CASES mutated files (truncations, flipped and inserted bytes, absurd sizes
written into headers). Every case must end in a valid result or a one-line UserError, in
under a second, without a large allocation.
"""

import gzip
import io
import tracemalloc
import warnings

import numpy as np
import pytest
from PIL import Image

from glassnet.data.idx import read_idx, write_idx
from glassnet.data.regression import read_inputs, read_xy_csv
from glassnet.errors import UserError
from glassnet.preprocessing import image_to_mnist

N_CASES = 1000
# Limits are bytes allocated, not seconds: deterministic under any load. A reader that works
# through an absurd claim allocates for it; one that refuses it up front does not.
MAX_PEAK_BYTES = 64 << 20  # the largest valid input here is a few kB
ABSURD = (b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x3b\x9a\xca\x00", b"\x00\x00\x00\x00")


def _mutate(data: bytes, rng: np.random.Generator, header: tuple[int, int] = (0, 16)) -> bytes:
    """One random mutation, or a few stacked."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.integers(0, 6)
        if kind == 0 and b:  # truncate
            b = b[: int(rng.integers(0, len(b)))]
        elif kind == 1 and b:  # flip bytes anywhere
            for i in rng.integers(0, len(b), int(rng.integers(1, 9))):
                b[i] ^= int(rng.integers(1, 256))
        elif kind == 2:  # insert random bytes
            at = int(rng.integers(0, len(b) + 1))
            b[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        elif kind == 3 and len(b) >= header[1]:  # absurd numbers in the header
            at = int(rng.integers(header[0], header[1] - 3))
            b[at : at + 4] = ABSURD[int(rng.integers(0, len(ABSURD)))]
        elif kind == 4 and b:  # duplicate a slice
            i, j = sorted(rng.integers(0, len(b), 2))
            b[j:j] = b[i:j]
        elif kind == 5:  # drop a slice
            if b:
                i, j = sorted(rng.integers(0, len(b), 2))
                del b[i:j]
    return bytes(b)


def _fuzz(read, path, bases, seed, header=(0, 16)):
    """Run N_CASES mutated files through ``read``; return how many were valid and refused."""
    rng = np.random.default_rng(seed)
    outcomes = {"valid": 0, "refused": 0}
    peak = 0
    tracemalloc.start()
    try:
        for case in range(N_CASES):
            base = bases[case % len(bases)]
            data = _mutate(base, rng, header) if case >= len(bases) else base
            path.write_bytes(data)
            tracemalloc.reset_peak()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # Pillow warns about odd palettes
                    read(path)
                outcomes["valid"] += 1
            except UserError as e:
                assert "\n" not in str(e) and str(path) in str(e), str(e)
                outcomes["refused"] += 1
            peak = max(peak, tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()
    assert peak < MAX_PEAK_BYTES, f"a case allocated {peak:,} bytes"
    assert sum(outcomes.values()) == N_CASES
    return outcomes


def _idx_bases():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 12, dtype=np.uint8)
    raw = [_idx_bytes(images), _idx_bytes(labels)]
    return raw + [gzip.compress(r, mtime=0) for r in raw]


def _idx_bytes(a):
    buf = io.BytesIO()
    buf.write(bytes([0, 0, 8, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape))
    buf.write(a.tobytes())
    return buf.getvalue()


def test_fuzz_idx_reader(tmp_path):
    outcomes = _fuzz(read_idx, tmp_path / "f.idx", _idx_bases(), seed=1)
    assert outcomes["valid"] >= 4 and outcomes["refused"] > N_CASES // 2, outcomes


@pytest.mark.parametrize("gz", [False, True])
def test_idx_header_claiming_a_billion_images_is_refused_unread(tmp_path, gz):
    head = bytes([0, 0, 8, 3]) + (10**9).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    data = head + bytes(1000)
    path = tmp_path / ("big.idx.gz" if gz else "big.idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match="beyond the"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing near the 784 GB the header claims


def test_gzip_that_inflates_past_its_header_is_refused_quickly(tmp_path):
    """A 1 MB claim on a gzip that inflates to 200 MB of zeros: read up to the claim, no more."""
    head = bytes([0, 0, 8, 1]) + (1 << 20).to_bytes(4, "big")
    path = tmp_path / "bomb.idx.gz"
    comp = gzip.GzipFile(fileobj=(buf := io.BytesIO()), mode="wb", mtime=0)
    comp.write(head)
    for _ in range(200):
        comp.write(bytes(1 << 20))
    comp.close()
    path.write_bytes(buf.getvalue())
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match="trailing bytes"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # the 1 MB claim and a chunk past it, never the 200 MB


def test_valid_idx_still_reads(tmp_path):
    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a.idx.gz", a)), a)


def _csv_bases():
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, 30)
    rows = "\n".join(f"{a!r},{np.sin(a)!r}" for a in x)
    return [
        ("input,label\n" + rows + "\n").encode(),
        (rows + "\n").encode(),
        ("\ufeffinput,label\r\n" + rows.replace("\n", "\r\n")).encode("utf-8"),
        b'input,label\n"1.5","2.5"\n3,4\n',
    ]


def test_fuzz_regression_csv_reader(tmp_path):
    outcomes = _fuzz(lambda p: read_xy_csv(p, "--train"), tmp_path / "t.csv", _csv_bases(), 2)
    assert outcomes["valid"] >= 4 and outcomes["refused"] > 100, outcomes


def test_fuzz_prediction_inputs_reader(tmp_path):
    bases = _csv_bases() + [b"x\n1\n2.5\n-3e2\n", b"0.5\n"]
    outcomes = _fuzz(lambda p: read_inputs(p, "--input"), tmp_path / "in.csv", bases, 3)
    assert outcomes["valid"] >= 6 and outcomes["refused"] > 100, outcomes


def test_csv_with_a_nul_byte_or_a_giant_field_is_one_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"input,label\n1,2\x00\n")
    with pytest.raises(UserError, match="t.csv"):
        read_xy_csv(p, "--train")
    p.write_bytes(b'input,label\n"' + b"1" * 200_000 + b'",2\n')
    with pytest.raises(UserError, match="t.csv") as e:
        read_xy_csv(p, "--train")
    assert len(str(e.value)) < 300  # the bad value is shown clipped


def _image_bases():
    digit = np.zeros((40, 32), dtype=np.uint8)
    digit[8:32, 14:18] = 255  # a "1"
    out = []
    for fmt, mode in (("PNG", "L"), ("JPEG", "L"), ("BMP", "RGB"), ("GIF", "P"), ("PNG", "RGBA")):
        buf = io.BytesIO()
        Image.fromarray(digit).convert(mode).save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


def test_fuzz_image_reader(tmp_path):
    # Headers: PNG's IHDR width/height sit at bytes 16-24, BMP's at 18-26, GIF's at 6-10.
    outcomes = _fuzz(image_to_mnist, tmp_path / "digit.img", _image_bases(), 4, header=(6, 26))
    assert outcomes["valid"] >= 5 and outcomes["refused"] > 100, outcomes


@pytest.mark.parametrize("side, message", [(6000, "6000x6000 pixels"), (100_000, "too many")])
def test_image_claiming_huge_dimensions_is_refused_before_decoding(tmp_path, side, message):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(buf, format="BMP")
    data = bytearray(buf.getvalue())
    data[18:22] = side.to_bytes(4, "little")  # BMP width
    data[22:26] = side.to_bytes(4, "little")  # BMP height
    p = tmp_path / "huge.bmp"
    p.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match=message):
            image_to_mnist(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
