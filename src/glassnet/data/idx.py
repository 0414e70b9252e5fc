"""Reader for the IDX format (MNIST and its look-alikes), raw or gzipped, fully validated."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from glassnet.errors import UserError

__all__ = ["read_idx", "parse_idx", "write_idx"]

_UBYTE = 0x08  # the only element type MNIST-like sets use


# No IDX data set glassnet reads comes near this (MNIST's largest file is 47 MB); a header that
# claims more is refused before any memory is reserved for it.
MAX_BYTES = 1 << 31
_CHUNK = 1 << 20


def read_idx(path: str | Path) -> np.ndarray:
    """Return the uint8 array stored in an IDX file (``.gz`` is decompressed on the fly).

    The header is checked before the body is read: a claimed size beyond ``MAX_BYTES``, or
    (uncompressed) beyond the file's own size, is refused at once, and a gzipped body is read
    in chunks up to the claimed size only, so a short file claiming 10^9 images, or a small
    gzip that inflates without end, costs neither memory nor time.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    name = str(path)
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            head = f.read(4)
            ndim = _check_magic(head, name)
            dims = _dims(head + f.read(4 * ndim), name)
            size = _claimed_size(dims, name)
            if not gz:
                _check_length(path.stat().st_size, 4 + 4 * ndim + size, dims, name)
            body = _read_up_to(f, size + 1)  # one byte more tells trailing data
    except (EOFError, OSError, zlib.error) as e:
        raise UserError(f"{path}: cannot read or decompress ({e})") from None
    _check_length(4 + 4 * ndim + len(body), 4 + 4 * ndim + size, dims, name)
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes: check magic number, dimensions and length; return a uint8 array."""
    ndim = _check_magic(raw[:4], name)
    dims = _dims(raw[: 4 + 4 * ndim], name)
    header = 4 + 4 * ndim
    _check_length(len(raw), header + _claimed_size(dims, name), dims, name)
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _check_magic(head: bytes, name: str) -> int:
    """Validate the 4-byte magic number; return the number of dimensions."""
    if len(head) < 4:
        raise UserError(f"{name}: too short for an IDX header ({len(head)} bytes)")
    zero1, zero2, dtype, ndim = head[:4]
    if zero1 != 0 or zero2 != 0:
        raise UserError(f"{name}: wrong magic number {head[:4].hex()}; not an IDX file")
    if dtype != _UBYTE:
        raise UserError(f"{name}: element type 0x{dtype:02x} not supported; expected 0x08 (uint8)")
    if not 1 <= ndim <= 4:
        raise UserError(f"{name}: {ndim} dimensions; expected 1 to 4")
    return ndim


def _dims(header: bytes, name: str) -> tuple[int, ...]:
    ndim = header[3]
    if len(header) < 4 + 4 * ndim:
        raise UserError(f"{name}: truncated header")
    return tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))


def _claimed_size(dims: tuple[int, ...], name: str) -> int:
    size = math.prod(dims)  # a Python int: no overflow, whatever the header says
    if size > MAX_BYTES:
        raise UserError(
            f"{name}: the header claims dimensions {dims} ({size:,} bytes), beyond the "
            f"{MAX_BYTES:,}-byte limit; refused"
        )
    return size


def _check_length(actual: int, expected: int, dims: tuple[int, ...], name: str) -> None:
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise UserError(
            f"{name}: {what}: {actual} bytes, expected {expected} for dimensions {dims}"
        )


def _read_up_to(f, n: int) -> bytes:
    """At most ``n`` bytes from ``f``, read in chunks (memory grows with the data, not ``n``)."""
    parts, got = [], 0
    while got < n:
        chunk = f.read(min(_CHUNK, n - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 array as IDX (gzipped when the name ends in .gz); return the path."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes([0, 0, _UBYTE, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = head + array.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path
