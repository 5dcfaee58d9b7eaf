"""Drawing kernel results: display scaling of raw filter outputs, small matrices with their
numbers, the step-through table (window × kernel = products → sum), a layer's feature maps.
Numpy and Pillow only: a kernel change re-renders in milliseconds.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass

import matplotlib
import numpy as np
from PIL import Image

from vlmlab.images import ImageSource, to_uint8
from vlmlab.kernels import (
    DISPLAYS,
    Convolution,
    KernelError,
    apply_kernel,
    check_kernel,
    convolution,
    explain_output_size,
    image_pixels,
    output_size,
    padding_width,
)
from vlmlab.kernels.step import PixelStep, explain_pixel
from vlmlab.pixels.render import draw_number_grid, format_number, titled_row

DISPLAY_MODES = dict(
    zip(
        DISPLAYS,
        ("clip to 0–255", "absolute value", "min–max rescale", "signed colour map"),
        strict=True,
    )
)
SIGNED_CMAP = "RdBu_r"  # blue < 0 < red, white at 0
MATRIX_CELL = 44
MAX_MATRIX = 16  # matrices up to this side are drawn with their numbers


@functools.lru_cache(maxsize=4)
def _lut(cmap: str) -> np.ndarray:
    return matplotlib.colormaps[cmap](np.linspace(0, 1, 256), bytes=True)[:, :3]  # (256, 3)


def signed_map(values: np.ndarray, *, percentile: float = 99.5) -> np.ndarray:
    """(H, W) values → (H, W, 3) uint8: red positive, blue negative, white 0. The scale is
    symmetric, ±(the `percentile` of |values|), so a few extreme pixels don't wash out the rest."""
    a = np.asarray(values, dtype=np.float32)
    magnitude = np.abs(a)
    bound = float(np.percentile(magnitude, percentile)) if a.size > 64 else 0.0
    bound = bound or float(magnitude.max(initial=0.0)) or 1.0
    index = np.clip(np.rint((a / bound + 1) * 127.5), 0, 255).astype(np.uint8)
    return _lut(SIGNED_CMAP)[index]


def display_result(values: np.ndarray, mode: str = "clip") -> np.ndarray:
    """Raw filter output → uint8 for the screen. `signed` shows a colour result's channel mean."""
    if mode not in DISPLAY_MODES:
        raise KernelError(f"The display mode must be one of {', '.join(DISPLAY_MODES)}.")
    if mode == "clip":
        return to_uint8(values, "clip")
    if mode == "abs":
        return to_uint8(np.abs(values), "clip")
    if mode == "minmax":
        return to_uint8(values, "minmax")  # one stretch for all channels: colours stay true
    return signed_map(values.mean(axis=-1) if values.ndim == 3 else values)


def describe_values(values: np.ndarray) -> str:
    """One line on the raw output: its range, and how much the chosen display clips away."""
    low, high = float(values.min()), float(values.max())
    clipped = (np.count_nonzero(values < 0) + np.count_nonzero(values > 255)) / max(values.size, 1)
    note = f"; {clipped:.0%} of values fall outside 0–255" if clipped >= 0.005 else ""
    return f"Raw output values: {format_number(low)} … {format_number(high)}{note}."


@dataclass(frozen=True)
class KernelView:
    """What both faces show after a kernel change."""

    image: Image.Image  # the result as displayed (a matrix is drawn with its numbers)
    values: np.ndarray  # the raw float32 output of apply_kernel
    arithmetic: str  # the output-size arithmetic and the raw value range
    cell: int  # display pixels per output pixel (for clicks): 1, or MATRIX_CELL for a matrix


def render_kernel(
    image: ImageSource | np.ndarray,
    kernel: np.ndarray,
    settings: Convolution | None = None,
    *,
    mode: str = "clip",
    **options,
) -> KernelView:
    """apply_kernel, then the display: a photo scaled by `mode`, a small matrix as numbers.
    `settings` as for `apply_kernel`."""
    how = convolution(settings, **options)
    pixels = image_pixels(image, grayscale=how.grayscale)
    values = apply_kernel(pixels, kernel, how)
    height, width = pixels.shape[:2]
    size = np.shape(kernel)[-1]
    arithmetic = explain_output_size(height, width, size, how.padding, how.stride)
    arithmetic += "\n" + describe_values(values)
    if _is_matrix(image):
        return KernelView(draw_matrix(values), values, arithmetic, MATRIX_CELL)
    return KernelView(Image.fromarray(display_result(values, mode)), values, arithmetic, 1)


def render_step(
    image: ImageSource | np.ndarray,
    kernel: np.ndarray,
    row: int | None = None,
    col: int | None = None,
    settings: Convolution | None = None,
    **options,
) -> tuple[PixelStep, str]:
    """explain_pixel at (row, col) moved inside the output (None: the middle), and its HTML,
    checked against apply_kernel's value at that pixel. `settings` as for `apply_kernel`."""
    how = convolution(settings, **options)
    pixels = image_pixels(image, grayscale=how.grayscale)
    size = check_kernel(kernel).shape[-1]
    out_h, out_w = output_size(*pixels.shape[:2], size, how.padding, how.stride)
    row = out_h // 2 if row is None else int(np.clip(row, 0, out_h - 1))
    col = out_w // 2 if col is None else int(np.clip(col, 0, out_w - 1))
    step = explain_pixel(pixels, kernel, row, col, how)
    computed = apply_kernel(pixels, kernel, how)[row, col]
    return step, step_html(step, computed=np.atleast_1d(computed))


def _is_matrix(image) -> bool:
    return isinstance(image, np.ndarray) and image.ndim == 2 and max(image.shape) <= MAX_MATRIX


# ---------------------------------------------------------------------------------------------
# Small matrices (the lecture's worked example), drawn with their numbers


def matrix_fill(values: np.ndarray) -> np.ndarray:
    """Pale colours behind a matrix's numbers (white → blue; red/blue for signed values)."""
    a = np.asarray(values, dtype=np.float32)
    if a.min(initial=0) < 0:
        return (signed_map(a).astype(np.float32) * 0.55 + 255 * 0.45).astype(np.uint8)
    high = float(a.max(initial=0)) or 1.0
    shade = np.clip(a / high, 0, 1)[..., None]
    return (255 - shade * np.array([110, 70, 20])).astype(np.uint8)


def draw_matrix(
    values: np.ndarray, *, highlight: tuple[int, int, int, int] | None = None
) -> Image.Image:
    """A small matrix as a grid of numbers (cells `MATRIX_CELL` pixels wide)."""
    values = np.asarray(values)
    if values.ndim == 3:
        values = values.mean(axis=-1)
    return draw_number_grid(values, matrix_fill(values), cell=MATRIX_CELL, highlight=highlight)


_NUMPY_PAD = {"reflect": "reflect", "replicate": "edge", "zero": "constant", "valid": "constant"}


def draw_padded_matrix(
    matrix: np.ndarray, size: int, padding: str, step: PixelStep | None = None
) -> Image.Image:
    """The input matrix with its padding drawn around it (faded), and the step's window outlined.

    The padding comes from numpy's `np.pad` (reflect / edge / constant), the same rule OpenCV
    applies while filtering.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    p = padding_width(size, padding)
    padded = np.pad(matrix, p, mode=_NUMPY_PAD[padding])
    faded = np.pad(np.zeros(matrix.shape, bool), p, constant_values=True)
    box = None
    if step is not None:
        box = (step.top + p, step.left + p, step.top + p + size, step.left + p + size)
    fill = matrix_fill(padded)
    return draw_number_grid(padded, fill, cell=MATRIX_CELL, highlight=box, faded=faded)


# ---------------------------------------------------------------------------------------------
# The step-through: window × kernel = products → sum

_CSS = (
    "<style>.vl-step table{border-collapse:collapse;margin:2px 6px 2px 0;display:inline-table;"
    "vertical-align:middle}.vl-step td{border:1px solid #bbb;padding:1px 5px;text-align:right;"
    "font:12px monospace;min-width:2.2em}.vl-step td.pad{color:#999;background:#f1f1f1;"
    "font-style:italic}.vl-step .op{font:16px sans-serif;margin:0 4px;vertical-align:middle}"
    ".vl-step caption{font:11px sans-serif;color:#555}</style>"
)


def _table(values: np.ndarray, caption: str, faded: np.ndarray | None = None) -> str:
    rows = []
    for i, row in enumerate(values):
        cells = "".join(
            f"<td class='pad'>{format_number(v)}</td>"
            if faded is not None and faded[i, j]
            else f"<td>{format_number(v)}</td>"
            for j, v in enumerate(row)
        )
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><caption>{html.escape(caption)}</caption>{''.join(rows)}</table>"


def step_html(step: PixelStep, *, computed: np.ndarray | None = None) -> str:
    """The step as HTML: for each channel, window × kernel = products, and their sum.

    `computed` (C,) are apply_kernel's values at that pixel, shown beside the hand sum.
    """
    k = step.window.shape[-1]
    operation = "convolution (kernel rotated 180°)" if step.flip else "cross-correlation"
    out_h, out_w = step.output_shape
    head = (
        f"<p><b>Output pixel (row {step.row}, column {step.col})</b> of {out_h}×{out_w}, "
        f"{operation}: the {k}×{k} window at input rows {step.top}…{step.top + k - 1}, "
        f"columns {step.left}…{step.left + k - 1}"
        + (" (grey cells lie in the padding)." if not step.inside.all() else ".")
        + "</p>"
    )
    parts = [_CSS, "<div class='vl-step'>", head]
    padded = ~step.inside
    for c, name in enumerate(step.channels):
        label = f"{name}: " if len(step.channels) > 1 else ""
        total = format_number(step.sums[c])
        check = ""
        if computed is not None:
            check = f" <small>(apply_kernel: {format_number(computed[c])})</small>"
        parts.append(
            "<div>"
            + _table(step.window[c], f"{label}input window", padded)
            + "<span class='op'>×</span>"
            + _table(step.weights[c], "kernel" + (" (rotated)" if step.flip else ""))
            + "<span class='op'>=</span>"
            + _table(step.products[c], "products")
            + f"<span class='op'>→ sum = <b>{total}</b>{check}</span></div>"
        )
    parts.append(f"<p>{html.escape(contrast_note(step))}</p></div>")
    return "".join(parts)


def contrast_note(step: PixelStep) -> str:
    """Where cross-correlation and convolution part ways (or why they don't here)."""
    this = "convolution" if step.flip else "cross-correlation"
    other = "cross-correlation" if step.flip else "convolution"
    if step.symmetric:
        return (
            f"This kernel equals its 180° rotation, so {this} and {other} give the same result "
            "everywhere."
        )
    values = ", ".join(format_number(v) for v in step.other_sums)
    return (
        f"The kernel is not symmetric: {other} (the kernel rotated 180°) would give {values} "
        f"here instead of {', '.join(format_number(v) for v in step.sums)}."
    )


# ---------------------------------------------------------------------------------------------
# A convolutional layer's feature maps


def draw_layer_maps(
    maps: np.ndarray, names: list[str] | None = None, *, side: int = 260
) -> Image.Image:
    """N feature maps (N, H′, W′) side by side, each in the signed colour map with its range."""
    tiles = []
    for n, values in enumerate(maps):
        tile = Image.fromarray(signed_map(values))
        tile.thumbnail(
            (side, side),
            Image.Resampling.NEAREST if max(values.shape) < side else Image.Resampling.BILINEAR,
        )
        if max(values.shape) < side // 4:  # tiny maps (the 5×5 example): magnify
            factor = side // max(values.shape)
            tile = tile.resize(
                (values.shape[1] * factor, values.shape[0] * factor), Image.Resampling.NEAREST
            )
        name = names[n] if names and n < len(names) else f"filter {n + 1}"
        low, high = format_number(values.min()), format_number(values.max())
        tiles.append((tile, f"{n + 1}: {name}  ({low} … {high})"))
    return titled_row(tiles, columns=4)
