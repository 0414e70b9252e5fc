"""Reader for the IDX format (MNIST and its look-alikes), raw or gzipped, fully validated."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from glassnet.errors import UserError

__all__ = ["read_idx", "parse_idx", "write_idx"]

_UBYTE = 0x08  # the only element type MNIST-like sets use


def read_idx(path: str | Path) -> np.ndarray:
    """Return the uint8 array stored in an IDX file (``.gz`` is decompressed on the fly)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise UserError(f"{path}: cannot read or decompress ({e})") from None
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes: check magic number, dimensions and length; return a uint8 array."""
    if len(raw) < 4:
        raise UserError(f"{name}: too short for an IDX header ({len(raw)} bytes)")
    zero1, zero2, dtype, ndim = raw[:4]
    if zero1 != 0 or zero2 != 0:
        raise UserError(f"{name}: wrong magic number {raw[:4].hex()}; not an IDX file")
    if dtype != _UBYTE:
        raise UserError(f"{name}: element type 0x{dtype:02x} not supported; expected 0x08 (uint8)")
    if not 1 <= ndim <= 4:
        raise UserError(f"{name}: {ndim} dimensions; expected 1 to 4")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{name}: truncated header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise UserError(
            f"{name}: {what}: {len(raw)} bytes, expected {expected} for dimensions {dims}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


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
