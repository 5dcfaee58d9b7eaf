"""Convolution kernels on images: the lecture's g(x, y) = Σ k(u, v) f(x − u, y − v), its worked
5×5 ∗ 3×3 example, the classic preset kernels (setosa.io's "image kernels explained visually"),
padding, stride, and a convolutional layer with several filters. OpenCV does the filtering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from vlmlab.errors import LabError
from vlmlab.images import MAX_PIXELS, ImageError, ImageSource
from vlmlab.pixels import rgb_pixels
from vlmlab.text import clean_text


class KernelError(LabError):
    """A kernel, padding or stride the lab cannot use, with one sentence saying what to do."""


MAX_KERNEL = 15  # the largest kernel side
MAX_VALUE = 1e6  # the largest magnitude of a kernel value
MAX_CHANNELS = 16  # blocks in one multi-channel kernel
MAX_FILTERS = 16  # filters in one convolutional layer
MAX_KERNEL_CHARS = 100_000  # enough to paste a 101×101 grid and be told it is too big

PADDINGS = ("reflect", "replicate", "zero", "valid")
_BORDERS = {
    "reflect": cv2.BORDER_REFLECT_101,  # mirror without repeating the edge pixel: d c b | a b c d
    "replicate": cv2.BORDER_REPLICATE,  # a a a | a b c d
    "zero": cv2.BORDER_CONSTANT,  # 0 0 0 | a b c d
    "valid": cv2.BORDER_CONSTANT,  # computed, then the border rows and columns are cropped
}
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's "L" mode

# ---------------------------------------------------------------------------------------------
# Presets: the classic kernels, written as the textbooks write them.


def _k(rows: Sequence[Sequence[float]], scale: float = 1.0) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64) * scale


_GAUSS5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])  # binomial ≈ Gaussian, sums to 256

PRESETS: dict[str, np.ndarray] = {
    "identity": _k([[0, 0, 0], [0, 1, 0], [0, 0, 0]]),
    "box blur": _k(np.ones((3, 3)), 1 / 9),
    "Gaussian blur 3×3": _k([[1, 2, 1], [2, 4, 2], [1, 2, 1]], 1 / 16),
    "Gaussian blur 5×5": _k(_GAUSS5, 1 / 256),
    "sharpen": _k([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "unsharp mask 5×5": _k(np.where(np.arange(25).reshape(5, 5) == 12, 512, 0) - _GAUSS5, 1 / 256),
    "outline (Laplacian)": _k([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]),
    "Sobel top": _k([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]),
    "Sobel bottom": _k([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
    "Sobel left": _k([[1, 0, -1], [2, 0, -2], [1, 0, -1]]),
    "Sobel right": _k([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "emboss": _k([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]),
}

# The lecture's worked example: this 5×5 input and 3×3 kernel, no padding, give 3×3 outputs
# 11 2 15 / 13 8 12 / ? ? ? (the slide leaves the last row for the students).
LECTURE_INPUT = np.array(
    [[4, 5, 7, 6, 6], [3, 2, 8, 0, 7], [6, 7, 7, 1, 5], [3, 0, 1, 1, 1], [4, 3, 2, 1, 7]],
    dtype=np.float64,
)
LECTURE_KERNEL = _k([[0, 0, 0], [1, 0, 1], [0, 0, 0]])

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

# ---------------------------------------------------------------------------------------------
# Kernel text: parsed as numbers, never evaluated.

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_FRACTION = re.compile(rf"({_NUMBER.pattern})/({_NUMBER.pattern})")
_SEPARATORS = re.compile(r"[\s,;]+")
_NOT_FINITE = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)
_WRAPPER = re.compile(  # array([[…]], dtype=float32) / tensor([[…]], requires_grad=True)
    r"^\s*[A-Za-z_][\w.]*\(\s*(.*?)\s*(?:,\s*\w+\s*=\s*[\w.'\"]+\s*)*\)\s*$", re.S
)


def parse_kernel(text: str) -> np.ndarray:
    """Kernel text → (k, k) float64, or (C, k, k) for C blocks separated by a blank line.

    One kernel row per line, numbers separated by spaces, commas or semicolons; fractions
    like 1/9 and pasted numpy/torch brackets (`[[1, 0], [0, 1]]`) are understood. Anything
    else raises `KernelError` with one sentence.
    """
    text = clean_text(text, what="kernel").replace("−", "-")  # U+2212, pasted from slides
    if len(text) > MAX_KERNEL_CHARS:
        raise KernelError("The kernel text is too long; a kernel has at most 15×15 numbers.")
    blocks = _bracket_blocks(text) if "[" in text else _line_blocks(text)
    if not blocks or not any(blocks):
        raise KernelError("The kernel is empty: type its numbers, one row per line.")
    if len(blocks) > MAX_CHANNELS:
        raise KernelError(f"A kernel may have at most {MAX_CHANNELS} channels (blocks).")
    arrays = [_block_to_array(rows, i, len(blocks)) for i, rows in enumerate(blocks)]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        sizes = ", ".join(f"channel {i + 1} is {_size(a.shape)}" for i, a in enumerate(arrays))
        raise KernelError(f"Every channel of a kernel must be the same size: {sizes}.")
    kernel = arrays[0] if len(arrays) == 1 else np.stack(arrays)
    return check_kernel(kernel)


def format_kernel(kernel: np.ndarray) -> str:
    """The inverse of `parse_kernel`: compact numbers, one row per line, blank line per channel."""
    array = np.asarray(kernel, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise KernelError("A kernel must be k×k or C×k×k.")
    cells = [[[_compact(v) for v in row] for row in block] for block in array]
    width = max((len(c) for block in cells for row in block for c in row), default=1)
    return "\n\n".join(
        "\n".join(" ".join(c.rjust(width) for c in row) for row in block) for block in cells
    )


def _compact(value: float) -> str:
    text = f"{value:.6g}"
    return "0" if text in ("-0", "0") else text


def _line_blocks(text: str) -> list[list[list[str]]]:
    blocks: list[list[list[str]]] = [[]]
    for line in text.splitlines():
        cells = [c for c in _SEPARATORS.split(line.strip()) if c]
        if cells:
            blocks[-1].append(cells)
        elif blocks[-1]:
            blocks.append([])  # a blank line ends a channel
    return [b for b in blocks if b]


def _bracket_blocks(text: str) -> list[list[list[str]]]:
    """Nested brackets, as numpy, torch or Python print them, → blocks of rows of cells."""
    match = _WRAPPER.match(text)  # array([[...]]) / tensor([[...]], dtype=...)
    if match:
        text = match.group(1)
    stack: list[list] = [[]]
    for token in re.findall(r"\[|\]|[^\[\]\s,;]+", text):
        if token == "[":
            stack.append([])
        elif token == "]":
            if len(stack) == 1:
                raise KernelError("The kernel's brackets do not match: there is an extra ']'.")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(token)
    if len(stack) != 1:
        raise KernelError("The kernel's brackets do not match: a '[' is never closed.")
    tree = stack[0]
    while len(tree) == 1 and isinstance(tree[0], list) and _depth(tree[0]) >= 2:
        tree = tree[0]  # unwrap [[[...]]] down to rows or blocks
    depth = _depth(tree)
    if depth == 1:  # a single bracketed row, or loose numbers: one row
        return [[[str(c) for c in _flatten(tree)]]]
    if depth == 2:
        return [[_row_cells(row) for row in tree]]
    if depth == 3:
        return [[_row_cells(row) for row in block] for block in tree if isinstance(block, list)]
    raise KernelError("A kernel must be k×k or C×k×k; these brackets nest too deep.")


def _depth(node) -> int:
    if not isinstance(node, list):
        return 0
    return 1 + max((_depth(n) for n in node), default=0)


def _flatten(node) -> list:
    return [x for n in node for x in _flatten(n)] if isinstance(node, list) else [node]


def _row_cells(row) -> list[str]:
    if not isinstance(row, list) or any(isinstance(c, list) for c in row):
        raise KernelError("The kernel's brackets are uneven: write one [ … ] per row.")
    return [str(c) for c in row]


def _block_to_array(rows: list[list[str]], block: int, blocks: int) -> np.ndarray:
    where = f"channel {block + 1}, " if blocks > 1 else ""
    lengths = [len(r) for r in rows]
    if len(set(lengths)) > 1:
        first, bad = lengths[0], next(i for i, n in enumerate(lengths) if n != lengths[0])
        raise KernelError(
            f"Every row of the kernel needs the same number of values, but {where}row 1 has "
            f"{first} and row {bad + 1} has {lengths[bad]}."
        )
    # Before converting 10,000 cells of a pasted 101×101 grid:
    _check_shape((len(rows), lengths[0]), f"channel {block + 1} is" if blocks > 1 else "this one is")
    values = np.empty((len(rows), lengths[0]), dtype=np.float64)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            values[i, j] = _number(cell, f"{where}row {i + 1}, column {j + 1}")
    return values


def _number(cell: str, where: str) -> float:
    """One cell as a float: a decimal or a fraction like 1/9; never evaluated."""
    fraction = _FRACTION.fullmatch(cell)
    if fraction:
        top, bottom = float(fraction.group(1)), float(fraction.group(2))
        if bottom == 0:
            raise KernelError(f"The kernel value at {where} divides by zero ({cell}).")
        value = top / bottom
    elif _NUMBER.fullmatch(cell):
        value = float(cell)
    elif _NOT_FINITE.fullmatch(cell):
        raise KernelError(
            f"The kernel value at {where} is {cell}; kernel values must be ordinary finite numbers."
        )
    else:
        shown = cell if len(cell) <= 20 else cell[:20] + "…"
        raise KernelError(f"The kernel value at {where}, {shown!r}, is not a number.")
    if not np.isfinite(value) or abs(value) > MAX_VALUE:
        raise KernelError(
            f"The kernel value at {where} ({cell}) is too large; "
            f"keep kernel values between -1,000,000 and 1,000,000."
        )
    return value


def kernel_from_text(text: str, *, normalise: bool = False) -> np.ndarray:
    """The kernel a user typed, divided by its sum when `normalise` is ticked."""
    kernel = parse_kernel(text)
    return normalise_kernel(kernel) if normalise else kernel


def cells_to_array(cells, *, what: str = "kernel", max_side: int = MAX_KERNEL) -> np.ndarray:
    """A grid of cells (rows of strings or numbers, as an editable table gives them) → float64."""
    rows = [["" if c is None else str(c).strip() for c in row] for row in (cells or [])]
    rows = [row for row in rows if row]
    if not rows or all(not c for row in rows for c in row):
        raise KernelError(f"The {what} grid is empty: type a number in every cell.")
    if len(rows) > max_side or max(len(r) for r in rows) > max_side:
        raise KernelError(f"The {what} grid may be at most {max_side}×{max_side}.")
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            if not cell:
                raise KernelError(
                    f"Row {i + 1}, column {j + 1} of the {what} grid is empty; type a number (0 for "
                    "nothing)."
                )
    if what == "kernel":
        return check_kernel(_block_to_array(rows, 0, 1))
    return _block_to_array(rows, 0, 1)


def resize_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """The kernel centred in a size×size grid: zeros added around it, or its border cut off."""
    array = check_kernel(kernel)
    _check_shape((size, size))
    old = array.shape[-1]
    if size >= old:
        m = (size - old) // 2
        widths = [(0, 0)] * (array.ndim - 2) + [(m, m), (m, m)]
        return np.pad(array, widths)
    m = (old - size) // 2
    return array[..., m : m + size, m : m + size]


def parse_numbers(text: str, *, what: str, max_count: int) -> np.ndarray:
    """A flat list of numbers (e.g. a layer's biases), separated by spaces, commas or semicolons."""
    text = clean_text(text, what=what).replace("−", "-").strip("[]() ")
    cells = [c for c in _SEPARATORS.split(text) if c]
    if len(cells) > max_count:
        raise KernelError(f"Please give at most {max_count} {what} values; you gave {len(cells)}.")
    return np.array([_number(c, f"{what} value {i + 1}") for i, c in enumerate(cells)])


# ---------------------------------------------------------------------------------------------
# Checking kernels, padding and stride


def check_kernel(kernel) -> np.ndarray:
    """`kernel` as float64 (k, k) or (C, k, k), square, odd, ≤ 15, finite, |values| ≤ 1e6."""
    try:
        array = np.asarray(kernel, dtype=np.float64)
    except (TypeError, ValueError):
        raise KernelError("The kernel must be a grid of numbers, one row per line.") from None
    if array.size == 0:
        raise KernelError("The kernel is empty: type its numbers, one row per line.")
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim not in (2, 3):
        raise KernelError("A kernel must be a k×k grid, or C blocks of k×k for C channels.")
    if array.ndim == 3 and array.shape[0] > MAX_CHANNELS:
        raise KernelError(f"A kernel may have at most {MAX_CHANNELS} channels (blocks).")
    _check_shape(array.shape[-2:])
    if not np.isfinite(array).all():
        raise KernelError("The kernel contains NaN or infinity; use ordinary finite numbers.")
    if np.abs(array).max() > MAX_VALUE:
        raise KernelError("Kernel values must lie between -1,000,000 and 1,000,000.")
    return array


def _check_shape(shape: tuple[int, int], which: str = "this one is") -> None:
    rows, cols = shape
    if rows != cols or rows % 2 == 0:
        raise KernelError(
            f"The kernel must be square with an odd size, like 3×3 or 5×5; {which} "
            f"{_size((rows, cols))}."
        )
    if rows > MAX_KERNEL:
        raise KernelError(
            f"The kernel is {_size((rows, cols))}; the largest the lab takes is "
            f"{MAX_KERNEL}×{MAX_KERNEL}."
        )


def normalise_kernel(kernel: np.ndarray) -> np.ndarray:
    """Divide each channel by its sum, so flat regions keep their brightness (blurs).

    A channel summing to 0 (edge detectors) is left as it is, as GIMP's "normalise" does;
    an all-zero kernel cannot be normalised.
    """
    array = check_kernel(kernel)
    if not array.any():
        raise KernelError(
            "An all-zero kernel cannot be normalised by its sum; put some non-zero numbers in it."
        )
    sums = array.sum(axis=(-2, -1), keepdims=True)
    return np.where(np.abs(sums) > 1e-12, array / np.where(sums == 0, 1, sums), array)


def check_stride(stride) -> int:
    """The stride as an int ≥ 1 (a float like 2.0 is fine; 1.5, True or "2" are not)."""
    message = "The stride must be a whole number of at least 1."
    if isinstance(stride, (bool, np.bool_)) or not isinstance(stride, (int, float, np.number)):
        raise KernelError(message)
    try:
        value = float(stride)
    except OverflowError:
        raise KernelError("The stride is far too large; use a small whole number like 1 or 2.")
    if not np.isfinite(value) or value != int(value) or value < 1:
        raise KernelError(message)
    return int(value)


def check_padding(padding: str) -> str:
    if padding not in PADDINGS:
        raise KernelError(f"The padding must be one of {', '.join(PADDINGS)}.")
    return padding


def padding_width(size: int, padding: str) -> int:
    """p, the rows (and columns) added on each side: k // 2 ("same" output), or 0 for valid."""
    return 0 if check_padding(padding) == "valid" else size // 2


def output_size(height: int, width: int, size: int, padding: str, stride: int) -> tuple[int, int]:
    """(H′, W′) = (⌊(H + 2p − k)/s⌋ + 1, ⌊(W + 2p − k)/s⌋ + 1), or `KernelError` if k does not fit."""
    p, s = padding_width(size, padding), check_stride(stride)
    if size > height + 2 * p or size > width + 2 * p:
        raise KernelError(
            f"The {size}×{size} kernel is larger than the {'' if p == 0 else 'padded '}image "
            f"({height + 2 * p}×{width + 2 * p}); choose a smaller kernel or add padding."
        )
    return (height + 2 * p - size) // s + 1, (width + 2 * p - size) // s + 1


def explain_output_size(height: int, width: int, size: int, padding: str, stride: int) -> str:
    """The output-size arithmetic, worked out for these numbers (one line per dimension)."""
    out_h, out_w = output_size(height, width, size, padding, stride)
    p, stride = padding_width(size, padding), check_stride(stride)
    lines = [
        f"k = {size}, p = {p} ({padding} padding), s = {stride}:",
        f"H′ = ⌊(H + 2p − k) / s⌋ + 1 = ⌊({height} + 2·{p} − {size}) / {stride}⌋ + 1 = {out_h}",
        f"W′ = ⌊(W + 2p − k) / s⌋ + 1 = ⌊({width} + 2·{p} − {size}) / {stride}⌋ + 1 = {out_w}",
        f"{height}×{width} in → {out_h}×{out_w} out.",
    ]
    return "\n".join(lines)


def _size(shape) -> str:
    return "×".join(str(n) for n in shape)


# ---------------------------------------------------------------------------------------------
# Applying kernels


def image_pixels(image: ImageSource | np.ndarray, *, grayscale: bool = False) -> np.ndarray:
    """The numbers a kernel slides over: (H, W) float32 for a matrix or grayscale, else (H, W, 3).

    A 2-D numeric array is a matrix, kept as it is (no conversion, no clipping). A colour image
    stays 8-bit (OpenCV converts while filtering); PIL images and arrays keep their size, files
    are read at the lab's working size. `grayscale` uses the BT.601 luma weights, unrounded.
    """
    if isinstance(image, np.ndarray) and image.ndim == 2:
        if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
            raise ImageError("A matrix must hold numbers.")
        if image.size == 0 or image.size > MAX_PIXELS:
            raise ImageError("A matrix must have between 1 and 64 million values.")
        if np.iscomplexobj(image):
            raise ImageError("A matrix must hold real numbers.")
        matrix = image.astype(np.float32)
        if not np.isfinite(matrix).all():
            raise ImageError("The matrix contains NaN or infinite values (or numbers too large).")
        return matrix
    rgb = rgb_pixels(image)
    if not grayscale:
        return rgb  # (H, W, 3) uint8
    return cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2GRAY)  # (H, W) float32, BT.601


def apply_kernel(
    image: ImageSource | np.ndarray,
    kernel: np.ndarray,
    *,
    padding: str = "reflect",
    stride: int = 1,
    grayscale: bool = False,
    flip: bool = False,
) -> np.ndarray:
    """Slide `kernel` over `image`: raw float32 values, (H′, W′, 3) for colour, else (H′, W′).

    `flip=False` is cross-correlation (what CNN layers compute); `flip=True` rotates the kernel
    180° first: the convolution g(x, y) = Σ k(u, v) f(x − u, y − v). Colour is filtered per
    channel; a (3, k, k) kernel filters channel c with kernel[c]. Output (i, j) is the window
    whose top-left input pixel is (i·s − p, j·s − p); H′ = ⌊(H + 2p − k)/s⌋ + 1.
    """
    pixels = image_pixels(image, grayscale=grayscale)
    weights = _kernel_for(pixels, kernel, flip)
    output_size(*pixels.shape[:2], weights.shape[-1], padding, stride)  # raises if it won't fit
    full = _filter(pixels, weights, padding)  # (H, W[, C]), centred on every pixel
    return _crop_and_stride(full, weights.shape[-1], padding, check_stride(stride))


def _kernel_for(pixels: np.ndarray, kernel, flip: bool) -> np.ndarray:
    weights = check_kernel(kernel)
    if weights.ndim == 3 and (pixels.ndim != 3 or weights.shape[0] != pixels.shape[2]):
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        if channels == 1:
            raise KernelError(
                f"A {weights.shape[0]}-channel kernel needs a colour image; turn grayscale off "
                "or use a single k×k kernel."
            )
        raise KernelError(
            f"The kernel has {weights.shape[0]} channels but the image has {channels}; "
            f"give one k×k block per channel ({channels}) or a single k×k kernel."
        )
    if flip:
        weights = weights[..., ::-1, ::-1]  # rotate 180°: correlation → convolution
    return np.ascontiguousarray(weights, dtype=np.float32)


def _filter(pixels: np.ndarray, weights: np.ndarray, padding: str) -> np.ndarray:
    """cv2.filter2D (a cross-correlation) centred on every pixel, float32 out."""
    border = _BORDERS[check_padding(padding)]
    if weights.ndim == 2:
        return cv2.filter2D(pixels, cv2.CV_32F, weights, borderType=border)
    planes = [
        cv2.filter2D(np.ascontiguousarray(pixels[..., c]), cv2.CV_32F, w, borderType=border)
        for c, w in enumerate(weights)
    ]
    return np.stack(planes, axis=-1)


def _crop_and_stride(full: np.ndarray, size: int, padding: str, stride: int) -> np.ndarray:
    m = size // 2 if padding == "valid" else 0  # valid: drop centres whose window leaves the image
    if m == 0 and stride == 1:
        return full
    height, width = full.shape[:2]
    # Output (i, j) is centred on input (m + i·s, m + j·s): its window starts at (i·s − p, j·s − p).
    return np.ascontiguousarray(full[m : height - m : stride, m : width - m : stride])


# ---------------------------------------------------------------------------------------------
# One output pixel, worked out: the step-through view


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
    *,
    padding: str = "reflect",
    stride: int = 1,
    grayscale: bool = False,
    flip: bool = False,
) -> PixelStep:
    """Work out output pixel (row, col) of `apply_kernel` by hand (exactly what it computes)."""
    pixels = image_pixels(image, grayscale=grayscale)
    raw = check_kernel(kernel)
    weights = _kernel_for(pixels, raw, flip).astype(np.float64)
    size, s = weights.shape[-1], check_stride(stride)
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
        flip=flip,
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


# ---------------------------------------------------------------------------------------------
# A convolutional layer: N filters, each C×k×k summed over the channels, plus a bias


def parse_filters(text: str) -> np.ndarray:
    """Filters separated by a line of dashes (---), each a kernel as `parse_kernel` reads it.

    Returns (N, k, k) (each filter used on every channel) or (N, C, k, k).
    """
    text = clean_text(text, what="filters")
    parts = [p for p in re.split(r"^\s*-{3,}\s*$", text, flags=re.M) if p.strip()]
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
        total = sum(apply_kernel(plane, w_c, padding=padding, stride=stride)
                    for plane, w_c in zip(floats, w))
        maps.append(total + np.float32(b))
    out = np.stack(maps)  # (N, H′, W′)
    return np.maximum(out, 0) if relu else out
