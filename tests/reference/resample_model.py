"""A float64 model of Pillow's convolution resampling (`Image.resize`).

Used by the resize test as a second reference, because the order of Pillow's
two passes depends on its version: up to Pillow 12 the horizontal pass always
runs first; Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first
in some cases where the height shrinks more than the width (for example
910x1137 -> 1000x1000, or 640x480 from 910x1137). Each pass rounds and clamps
its 8-bit result, so at Lanczos overshoots the two orders differ by tens of
levels, while either order is reproduced by this model within 1 level.
"""

from __future__ import annotations

import numpy as np


def _lanczos3(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, 1.0 - np.abs(x))


KERNELS = {"lanczos": (_lanczos3, 3.0), "bilinear": (_triangle, 1.0)}


def weights(in_size: int, out_size: int, kind: str) -> np.ndarray:
    """(out_size, in_size) matrix of normalised taps. When shrinking, the
    kernel is stretched by the scale factor (antialiasing); taps falling
    outside the image are dropped and the rest renormalised."""
    kernel, support = KERNELS[kind]
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    reach = support * stretch
    m = np.zeros((out_size, in_size))
    for o in range(out_size):
        centre = (o + 0.5) * scale
        lo = max(int(centre - reach + 0.5), 0)
        hi = min(int(centre + reach + 0.5), in_size)
        taps = kernel((np.arange(lo, hi) - centre + 0.5) / stretch)
        m[o, lo:hi] = taps / taps.sum()
    return m


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x + 0.5), 0, 255)


def resize(a: np.ndarray, width: int, height: int, kind: str, vertical_first: bool) -> np.ndarray:
    """Resizes an HxW or HxWxC uint8 array, every channel independently,
    rounding and clamping to 8 bits after each pass like Pillow."""
    f = a.astype(np.float64)
    if f.ndim == 2:
        f = f[:, :, None]
    h, w = f.shape[:2]

    def horizontal(x):
        if width == x.shape[1]:
            return x
        return _to_u8(np.einsum("ow,hwc->hoc", weights(x.shape[1], width, kind), x, optimize=True))

    def vertical(x):
        if height == x.shape[0]:
            return x
        return _to_u8(np.einsum("oh,hwc->owc", weights(x.shape[0], height, kind), x, optimize=True))

    out = horizontal(vertical(f)) if vertical_first else vertical(horizontal(f))
    out = out.astype(np.uint8)
    return out[:, :, 0] if a.ndim == 2 else out
