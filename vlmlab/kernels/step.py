"""One output pixel of a kernel, worked out by hand: the lecture's step-through of the window,
the element-wise products and their sum, for cross-correlation and convolution alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlmlab.images import ImageSource
from vlmlab.kernels import (
    Convolution,
    KernelError,
    convolution,
    image_pixels,
    output_size,
    padding_width,
    prepare_kernel,
)


@dataclass(frozen=True)
class PixelStep:
    """How output pixel (row, col) comes about: its k×k input window, products and sum."""

    row: int
    col: int
    top: int  # input row of the window's top-left cell (negative inside the padding)
    left: int
    window: np.ndarray  # (C, k, k) input values under the kernel, padding included
    inside: np.ndarray  # (k, k) True where the window lies on the image, False in the padding
    weights: np.ndarray  # (C, k, k) the kernel as applied (rotated 180° when flipped)
    products: np.ndarray  # (C, k, k) window × weights
    sums: np.ndarray  # (C,) the output value(s): one per channel
    other_sums: np.ndarray  # (C,) what the other operation (flip toggled) gives here
    channels: tuple[str, ...]  # ("R", "G", "B") or ("value",)
    output_shape: tuple[int, int]
    flip: bool

    @property
    def symmetric(self) -> bool:
        """The kernel equals its 180° rotation: correlation and convolution agree everywhere."""
        return bool(np.array_equal(self.weights, self.weights[..., ::-1, ::-1]))


def explain_pixel(
    image: ImageSource | np.ndarray,
    kernel: np.ndarray,
    row: int,
    col: int,
    settings: Convolution | None = None,
    **options,
) -> PixelStep:
    """Work out output pixel (row, col) of `apply_kernel` by hand (exactly what it computes);
    `settings` as for `apply_kernel`."""
    how = convolution(settings, **options)
    padding, s = how.padding, how.stride
    pixels = image_pixels(image, grayscale=how.grayscale)
    weights = prepare_kernel(pixels, kernel, how).astype(np.float64)
    size = weights.shape[-1]
    height, width = pixels.shape[:2]
    shape = output_size(height, width, size, padding, s)
    if not (0 <= int(row) < shape[0] and 0 <= int(col) < shape[1]):
        raise KernelError(
            f"Output pixel ({row}, {col}) is outside the {shape[0]}×{shape[1]} output."
        )
    row, col = int(row), int(col)
    p = padding_width(size, padding)
    top, left = row * s - p, col * s - p
    rows, row_in = _border_index(top + np.arange(size), height, padding)
    cols, col_in = _border_index(left + np.arange(size), width, padding)
    planes = pixels[..., None] if pixels.ndim == 2 else pixels
    window = planes[np.ix_(rows, cols)].astype(np.float64).transpose(2, 0, 1)  # (C, k, k)
    inside = row_in[:, None] & col_in[None, :]
    if padding in ("zero", "valid"):
        window = np.where(inside, window, 0.0)
    weights = weights if weights.ndim == 3 else np.broadcast_to(weights, window.shape)
    products = window * weights
    other = weights[..., ::-1, ::-1]
    return PixelStep(
        row=row,
        col=col,
        top=top,
        left=left,
        window=window,
        inside=inside,
        weights=np.array(weights),
        products=products,
        sums=products.sum(axis=(1, 2)),
        other_sums=(window * other).sum(axis=(1, 2)),
        channels=("value",) if pixels.ndim == 2 else ("R", "G", "B"),
        output_shape=shape,
        flip=how.flip,
    )


def _border_index(index: np.ndarray, n: int, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """Where each (possibly outside) index reads from, as cv2's border modes do; and if inside."""
    inside = (index >= 0) & (index < n)
    if padding == "reflect" and n > 1:
        period = 2 * (n - 1)
        folded = np.abs(index) % period
        return np.where(folded >= n, period - folded, folded), inside
    if padding == "reflect":
        return np.zeros_like(index), inside
    return np.clip(index, 0, n - 1), inside  # replicate; zero/valid read 0 outside (see caller)
