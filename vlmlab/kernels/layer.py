"""A convolutional layer with several filters, the bridge from kernels to CNNs (the lecture's
"convolutional layer with 4 filters"): N filters, each C×k×k summed over the channels, plus a bias.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from vlmlab.checks import flag
from vlmlab.images import ImageSource
from vlmlab.kernels import (
    PRESETS,
    KernelError,
    apply_kernel,
    format_kernel,
    image_pixels,
    parse_kernel,
)
from vlmlab.kernels.text import _size, parse_numbers
from vlmlab.text import clean_text

MAX_FILTERS = 16  # filters in one layer

# A convolutional layer with 4 filters, each 3×3×3 (R, G, B), as on the "4 filters" slide.
_SOBEL_X = PRESETS["Sobel right"] / 3
_BOX = np.ones((3, 3)) / 9
LAYER_PRESET = np.stack(
    [
        np.stack([_SOBEL_X] * 3),  # vertical edges, on all three channels
        np.stack([_SOBEL_X.T] * 3),  # horizontal edges
        np.stack([_BOX, -_BOX, 0 * _BOX]),  # red against green
        np.stack([_BOX / 3] * 3),  # brightness, blurred
    ]
)  # (N=4, C=3, 3, 3)
LAYER_PRESET_NAMES = ("vertical edges", "horizontal edges", "red minus green", "brightness")


def parse_filters(text: str) -> np.ndarray:
    """Filters separated by a line of dashes (---), each a kernel as `parse_kernel` reads it.

    Returns (N, k, k) (each filter used on every channel) or (N, C, k, k).
    """
    text = clean_text(text, what="filters")
    parts = [p for p in re.split(r"^\s*-{3,}\s*$", text, flags=re.MULTILINE) if p.strip()]
    if not parts:
        raise KernelError("There are no filters: type at least one kernel.")
    if len(parts) > MAX_FILTERS:
        raise KernelError(f"A layer may have at most {MAX_FILTERS} filters; you gave {len(parts)}.")
    filters = []
    for i, part in enumerate(parts):
        try:
            filters.append(parse_kernel(part))
        except KernelError as error:
            raise KernelError(f"Filter {i + 1}: {error}") from None
    if len({f.shape for f in filters}) > 1:
        shapes = ", ".join(_size(f.shape) for f in filters)
        raise KernelError(f"Every filter of a layer must have the same shape; these are {shapes}.")
    return np.stack(filters)


def format_filters(filters: np.ndarray) -> str:
    """The inverse of `parse_filters`."""
    return "\n---\n".join(format_kernel(f) for f in np.asarray(filters))


def apply_conv_layer(
    image: ImageSource | np.ndarray,
    filters: np.ndarray,
    bias: Sequence[float] | np.ndarray | None = None,
    *,
    padding: str = "reflect",
    stride: int = 1,
    relu: bool = False,
) -> np.ndarray:
    """A convolutional layer: map n = Σ_c filters[n, c] ⋆ image[c] + bias[n] → (N, H′, W′).

    Cross-correlation, as in CNNs, on raw 0–255 values. `filters` is (N, C, k, k), or (N, k, k)
    to use each filter on every channel. `relu` clips negatives to 0, as the layer after would.
    """
    relu = flag(relu, "ReLU", message="The ReLU setting must be true or false.", error=KernelError)
    pixels = image_pixels(image)
    planes = pixels[..., None] if pixels.ndim == 2 else pixels
    channels = planes.shape[2]
    weights = np.asarray(filters, dtype=np.float64)
    if weights.ndim == 3:  # (N, k, k): the same kernel on every channel
        weights = np.repeat(weights[:, None], channels, axis=1)
    if weights.ndim != 4 or len(weights) == 0:
        raise KernelError("A layer's filters must be N×k×k or N×C×k×k.")
    if len(weights) > MAX_FILTERS:
        raise KernelError(f"A layer may have at most {MAX_FILTERS} filters.")
    if weights.shape[1] != channels:
        raise KernelError(
            f"Each filter has {weights.shape[1]} channels but the image has {channels}; "
            f"give {channels} blocks per filter."
        )
    bias = np.zeros(len(weights)) if bias is None else np.asarray(bias, dtype=np.float64)
    if bias.shape != (len(weights),) or not np.isfinite(bias).all():
        raise KernelError(f"Give one finite bias per filter ({len(weights)} numbers).")
    floats = [np.ascontiguousarray(planes[..., c], dtype=np.float32) for c in range(channels)]
    maps = []
    for w, b in zip(weights, bias):
        total = sum(
            apply_kernel(plane, w_c, padding=padding, stride=stride)
            for plane, w_c in zip(floats, w)
        )
        maps.append(total + np.float32(b))
    out = np.stack(maps)  # (N, H′, W′)
    return np.maximum(out, 0) if relu else out


# ---------------------------------------------------------------------------------------------
# A filter as a small table for editing: k rows, the channels' k×k blocks side by side


def readable_number(value: float) -> str:
    """A weight as a person writes it: -1/3 rather than -0.333333, 0.25, 2."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    fraction = Fraction(value).limit_denominator(99)
    if abs(float(fraction) - value) < 1e-6:  # also -0.333333, as the text keeps it
        return f"{fraction.numerator}/{fraction.denominator}"
    return f"{value:.4g}"


def filter_cells(weights: np.ndarray) -> list[list[str]]:
    """One filter, (C, k, k) or (k, k), as k rows of C·k cells (channel blocks side by side)."""
    blocks = np.asarray(weights, dtype=np.float64)
    blocks = blocks[None] if blocks.ndim == 2 else blocks
    return [
        [readable_number(v) for block in blocks for v in block[row]]
        for row in range(blocks.shape[-1])
    ]


def filter_from_cells(cells, channels: int = 3, *, what: str = "filter") -> np.ndarray:
    """The inverse of `filter_cells`: k rows of C·k cells → (C, k, k)."""
    numbers = [[_cell(c, what) for c in row] for row in (cells or [])]
    k = len(numbers)
    if k == 0 or any(len(row) != channels * k for row in numbers):
        raise KernelError(
            f"Each {what} is {k} rows of {channels}×{k} numbers (the R, G and B blocks side by "
            "side); fill every cell."
        )
    array = np.asarray(numbers, dtype=np.float64).reshape(k, channels, k).transpose(1, 0, 2)
    return np.ascontiguousarray(array)


def _cell(value, what: str) -> float:
    try:
        return float(parse_kernel(str(value)).ravel()[0])
    except KernelError:
        raise KernelError(f"A cell of the {what} reads {str(value)[:20]!r}, not a number.") from None


def parse_bias(text: str | None, filters: int) -> np.ndarray | None:
    """The biases typed for a layer of `filters` filters (one number each), or None when the
    text is empty (no bias)."""
    text = text if isinstance(text, str) else ""
    return parse_numbers(text, what="bias", max_count=filters) if text.strip() else None


def preset_names(filters: np.ndarray) -> list[str] | None:
    """The names of the preset layer's filters when `filters` are that layer, else None."""
    filters = np.asarray(filters)
    same = filters.shape == LAYER_PRESET.shape and np.allclose(filters, LAYER_PRESET)
    return list(LAYER_PRESET_NAMES) if same else None
