"""Turning images into network inputs: MNIST scaling, and any picture into an MNIST-like digit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glassnet.errors import UserError

__all__ = ["MNIST_MEAN", "MNIST_STD", "to_inputs", "from_inputs", "image_to_mnist"]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # pixel statistics of the MNIST training set
MAX_PIXELS = 25_000_000  # a photo of a digit is far smaller; larger files are refused unread


def to_inputs(images: np.ndarray, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> np.ndarray:
    """uint8 images (n, 28, 28) -> standardised float32 (n, 1, 28, 28)."""
    x = images.astype(np.float32) / 255.0
    return ((x - mean) / std)[:, None, :, :]  # (n, 1, 28, 28)


def from_inputs(x: np.ndarray, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> np.ndarray:
    """``to_inputs`` undone: standardised (n, 1, 28, 28) -> float pixels (n, 28, 28) in 0-255,
    clipped (a moved image's resampling may overshoot a little)."""
    return np.clip((x[:, 0] * std + mean) * 255.0, 0.0, 255.0)  # (n, 28, 28)


def image_to_mnist(path: str | Path) -> np.ndarray:
    """Load any image file and return a uint8 (28, 28) digit drawn the way MNIST digits are.

    MNIST digits are white on black, scaled so the digit fits a 20x20 box, and centred by
    their centre of mass in a 28x28 frame. Dark-on-light pictures are inverted first.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: image file not found")
    try:
        with Image.open(path) as im:
            w, h = im.size  # from the header: checked before any pixel is decoded
            if w * h > MAX_PIXELS or w < 1 or h < 1:
                raise UserError(f"{path}: {w}x{h} pixels; expected a picture of a digit")
            im.load()
            g = np.asarray(im.convert("L"), dtype=np.float32)
    except UserError:
        raise
    except Image.DecompressionBombError:  # Pillow's own limit, met while reading the header
        raise UserError(f"{path}: too many pixels; expected a picture of a digit") from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not a readable image (no format Pillow knows)") from None
    except Exception as e:  # noqa: BLE001 - Pillow's decoders raise many types on bad files
        raise UserError(f"{path}: not a readable image ({e.__class__.__name__})") from None
    # Border pixels tell the background: light background means dark ink, so invert.
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    if np.median(border) > 127:
        g = 255.0 - g
    g = g - np.median(border if np.median(border) <= 127 else 255.0 - border)
    g = np.clip(g, 0, None)
    if g.max() <= 0:
        return np.zeros((28, 28), dtype=np.uint8)
    g = g / g.max() * 255.0
    ys, xs = np.nonzero(g > 0.1 * 255)
    g = g[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]  # crop to the ink
    h, w = g.shape
    scale = 20.0 / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(
        Image.fromarray(g.astype(np.uint8)).resize((nw, nh), Image.Resampling.LANCZOS),
        dtype=np.float32,
    )
    frame = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - nh) // 2, (28 - nw) // 2
    frame[top : top + nh, left : left + nw] = small
    # Shift so the centre of mass sits at the centre, as MNIST was prepared.
    total = frame.sum()
    if total > 0:
        cy = (frame.sum(1) * np.arange(28)).sum() / total
        cx = (frame.sum(0) * np.arange(28)).sum() / total
        dy, dx = int(round(13.5 - cy)), int(round(13.5 - cx))
        frame = np.roll(np.roll(frame, dy, axis=0), dx, axis=1)
    return np.clip(frame, 0, 255).astype(np.uint8)
