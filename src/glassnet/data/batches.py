"""Mini-batches sliced from tensors held in memory, optionally moved at random (augmentation).

skorch iterators (``iterator_train=InMemoryLoader``): the semantics of a ``DataLoader`` over
the same data, at a fraction of its per-item cost for small models.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["InMemoryLoader", "AugmentLoader"]


def _arrays(dataset: Any) -> tuple[Any, Any]:
    """Pull (X, y) out of a skorch Dataset, possibly wrapped in a torch Subset."""
    if isinstance(dataset, torch.utils.data.Subset):
        X, y = _arrays(dataset.dataset)
        idx = np.asarray(dataset.indices)
        return X[idx], (None if y is None else y[idx])
    return dataset.X, dataset.y


class InMemoryLoader:
    """A DataLoader stand-in that slices whole mini-batches out of tensors held in memory.

    skorch's default path indexes one item at a time and collates, which costs more than the
    arithmetic of a small model. This yields ``(X[idx], y[idx])`` per batch instead, with the same
    semantics as ``DataLoader(shuffle=..., batch_size=..., drop_last=False)``. Shuffling draws
    from torch's global generator, so a seeded net sees the same batches every run.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 128,
        shuffle: bool = False,
        device: str | None = None,
    ) -> None:  # no **kwargs: a misspelt iterator_train__* option is an error, not ignored
        X, y = _arrays(dataset)
        self.X = torch.as_tensor(X)
        self.y = None if y is None else torch.as_tensor(y)
        if device is not None:  # keep the whole set on the GPU: one copy instead of one per batch
            self.X = self.X.to(device)
            self.y = None if self.y is None else self.y.to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self):
        n = len(self.X)
        order = torch.randperm(n, device=self.X.device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            idx = slice(start, start + self.batch_size)
            if order is not None:
                idx = order[idx]
            yield self._take(idx), (None if self.y is None else self.y[idx])

    def _take(self, idx: slice | torch.Tensor) -> torch.Tensor:
        return self.X[idx]


class AugmentLoader(InMemoryLoader):
    """InMemoryLoader that moves each training image at random: shift, and optionally rotate/zoom.

    Images are (n, channels, H, W). Shift only (``max_rotate = max_zoom = 0``) is exact: whole
    pixels, up to ``max_shift`` in x and y, the uncovered border filled with the set's minimum
    (the background of standardised digits); the set is padded once, so a batch costs one
    gather. With a rotation (up to ``max_rotate`` degrees either way) or a zoom (scale in
    ``1 +- max_zoom``) each batch is resampled bilinearly through one affine grid, the shift
    then continuous. ``elastic`` (alpha, in pixels) adds Simard et al.'s (2003) elastic
    distortion to that grid: a field of uniform random displacements per pixel, smoothed by a
    Gaussian of ``elastic_sigma`` pixels and scaled by alpha (they used alpha 34, sigma 4), so the
    strokes bend locally; still one resample per batch, on the images' own device. Randomness
    comes from torch's generator, seeded by the net.
    """

    def __init__(
        self,
        dataset: Any,
        *args: Any,
        max_shift: int = 2,
        max_rotate: float = 0.0,
        max_zoom: float = 0.0,
        elastic: float = 0.0,
        elastic_sigma: float = 4.0,
        **kw: Any,
    ) -> None:
        super().__init__(dataset, *args, **kw)
        self.max_shift, self.max_rotate, self.max_zoom = max_shift, max_rotate, max_zoom
        self.elastic, self.elastic_sigma = elastic, elastic_sigma
        self.padded = None
        self.images = self.X.dim() == 4 and len(self.X) > 0
        self.fill = self.X.amin().item() if self.images else 0.0
        self.resample = bool(max_rotate or max_zoom or elastic)
        s = max_shift
        if self.images and s > 0 and not self.resample:
            self.padded = torch.nn.functional.pad(self.X, (s, s, s, s), value=self.fill)
        self.blur = None
        if self.images and elastic:
            self.blur = (_gaussian_band(self.X.shape[2], elastic_sigma, self.X),
                         _gaussian_band(self.X.shape[3], elastic_sigma, self.X))  # fmt: skip

    def _take(self, idx: slice | torch.Tensor) -> torch.Tensor:
        if not self.images:
            return super()._take(idx)
        if self.resample:
            return self._affine(super()._take(idx))
        if self.padded is None:
            return super()._take(idx)
        if isinstance(idx, slice):
            idx = torch.arange(len(self.X), device=self.X.device)[idx]
        s, dev = self.max_shift, self.X.device
        b, (c, h, w) = len(idx), self.X.shape[1:]
        dy = torch.randint(0, 2 * s + 1, (b,), device=dev)
        dx = torch.randint(0, 2 * s + 1, (b,), device=dev)
        rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # (b, 1, h, 1)
        cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]  # (b, 1, 1, w)
        ci = torch.arange(c, device=dev)[None, :, None, None]  # (1, c, 1, 1)
        return self.padded[idx[:, None, None, None], ci, rows, cols]  # (b, c, h, w)

    def _affine(self, x: torch.Tensor) -> torch.Tensor:
        b, dev = len(x), x.device
        h, w = x.shape[2:]

        def uniform(limit: float) -> torch.Tensor:  # (b,) in [-limit, limit]
            return (torch.rand(b, device=dev) * 2 - 1) * limit

        angle = uniform(math.radians(self.max_rotate))
        zoom = 1 + uniform(self.max_zoom)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        tx, ty = uniform(2 * self.max_shift / w), uniform(2 * self.max_shift / h)  # grid units
        theta = torch.stack(
            [torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1
        )  # (b, 2, 3): output -> input coordinates
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        if self.blur is not None:
            grid = grid + self._displacement(b, h, w)  # (b, h, w, 2)
        # Sample x - fill, whose background is 0, so points outside the image read background.
        out = torch.nn.functional.grid_sample(x - self.fill, grid, align_corners=False)
        return out + self.fill  # (b, c, h, w)

    def _displacement(self, b: int, h: int, w: int) -> torch.Tensor:
        """Smooth random displacements in grid units, (b, h, w, 2) as (x, y) like the grid."""
        rows, cols = self.blur  # (h + 2r, h), (w + 2r, w)
        # Noise drawn 2r wider than the image, so every pixel's smoothed value has a full
        # neighbourhood (no padding: the border bends as much as the middle).
        noise = torch.rand(b * 2, len(rows), len(cols), device=rows.device, dtype=rows.dtype)
        field = rows.T @ ((noise * 2 - 1) @ cols)  # (2b, h, w): dx, dy, smoothed
        field = self.elastic * field.view(b, 2, h, w)  # pixels
        scale = torch.tensor([2 / w, 2 / h], device=rows.device, dtype=rows.dtype)
        return field.permute(0, 2, 3, 1) * scale  # (b, h, w, 2): pixels -> grid units


def _gaussian_band(n: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """(n + 2r, n) matrix whose product with a row of n + 2r values is that row smoothed by a
    Gaussian of ``sigma`` (support +- 3 sigma = r), keeping the n values with a full window:
    a separable blur as two matrix products, cheaper on CPU than a one-channel convolution."""
    r = math.ceil(3 * sigma)
    t = torch.arange(-r, r + 1, dtype=like.dtype, device=like.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    band = torch.zeros(n + 2 * r, n, dtype=like.dtype, device=like.device)
    for j in range(n):
        band[j : j + 2 * r + 1, j] = k / k.sum()
    return band
