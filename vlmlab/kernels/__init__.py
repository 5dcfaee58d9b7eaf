"""Convolution kernels on images: the lecture's g(x, y) = Σ k(u, v) f(x − u, y − v), its worked
5×5 ∗ 3×3 example, the classic preset kernels (setosa.io's "image kernels explained visually"),
padding and stride. OpenCV does the filtering.

Kernel text lives in `kernels_text` (re-exported here: `parse_kernel`, `format_kernel`, …), one
output pixel worked out in `kernels_step`, a layer of several filters in `kernels_layer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vlmlab.checks import choice, flag, whole_number
from vlmlab.images import MAX_PIXELS, ImageError, ImageSource
from vlmlab.kernels.text import (  # noqa: F401  (re-exported: the Convolution tab's contract)
    MAX_CHANNELS,
    MAX_KERNEL,
    MAX_VALUE,
    KernelError,
    _check_shape,
    cells_to_array,
    check_kernel,
    format_kernel,
    parse_kernel,
    parse_numbers,
)
from vlmlab.pixels import rgb_pixels

PADDINGS = ("reflect", "replicate", "zero", "valid")
DISPLAYS = ("clip", "abs", "minmax", "signed")  # how an output is shown (kernels_render)
_BORDERS = {
    "reflect": cv2.BORDER_REFLECT_101,  # mirror without repeating the edge pixel: d c b | a b c d
    "replicate": cv2.BORDER_REPLICATE,  # a a a | a b c d
    "zero": cv2.BORDER_CONSTANT,  # 0 0 0 | a b c d
    "valid": cv2.BORDER_CONSTANT,  # computed, then the border rows and columns are cropped
}

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

# ---------------------------------------------------------------------------------------------
# Kernels, padding and stride


def kernel_from_text(text: str, *, normalise: bool = False) -> np.ndarray:
    """The kernel a user typed, divided by its sum when `normalise` is ticked."""
    kernel = parse_kernel(text)
    return normalise_kernel(kernel) if normalise else kernel


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
    return whole_number(stride, "stride", 1, error=KernelError)


def check_padding(padding: str) -> str:
    return choice(padding, "padding", PADDINGS, error=KernelError)


@dataclass(frozen=True)
class Convolution:
    """How a kernel slides over an image, checked once when made; `apply_kernel`, the
    step-through (`explain_pixel`) and the renderers all take it."""

    padding: str = "reflect"  # one of PADDINGS: how the border is filled ("valid": not at all)
    stride: int = 1  # s: the window moves s pixels at a time
    grayscale: bool = False  # a photo is turned to BT.601 luma first (a matrix stays as it is)
    flip: bool = False  # True: convolution (the kernel rotated 180°); False: cross-correlation
    normalise: bool = False  # each kernel channel divided by its sum (a zero sum stays as it is)

    def __post_init__(self) -> None:
        settle = object.__setattr__  # frozen: the checked values replace the given ones once
        settle(self, "padding", check_padding(self.padding))
        settle(self, "stride", check_stride(self.stride))
        for name in ("grayscale", "flip", "normalise"):
            message = f"The {name} setting must be true or false."
            settle(self, name, flag(getattr(self, name), name, message=message, error=KernelError))


def convolution(settings: Convolution | None = None, **options) -> Convolution:
    """`settings`, or a `Convolution` made from its fields given as keywords (`padding="zero"`)."""
    if settings is None:
        return Convolution(**options)
    if not isinstance(settings, Convolution) or options:
        raise KernelError("Give the settings as one Convolution(...) or as keywords, not both.")
    return settings


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
    settings: Convolution | None = None,
    **options,
) -> np.ndarray:
    """Slide `kernel` over `image`: raw float32 values, (H′, W′, 3) for colour, else (H′, W′).

    `settings` (a `Convolution`, or its fields as keywords): `flip=False` is cross-correlation
    (what CNN layers compute); `flip=True` rotates the kernel 180° first: the convolution
    g(x, y) = Σ k(u, v) f(x − u, y − v). Colour is filtered per channel; a (3, k, k) kernel
    filters channel c with kernel[c]. Output (i, j) is the window whose top-left input pixel is
    (i·s − p, j·s − p); H′ = ⌊(H + 2p − k)/s⌋ + 1.
    """
    how = convolution(settings, **options)
    pixels = image_pixels(image, grayscale=how.grayscale)
    weights = prepare_kernel(pixels, kernel, how)
    size = weights.shape[-1]
    output_size(*pixels.shape[:2], size, how.padding, how.stride)  # raises if it won't fit
    full = _filter(pixels, weights, how.padding)  # (H, W[, C]), centred on every pixel
    return _crop_and_stride(full, size, how.padding, how.stride)


def prepare_kernel(pixels: np.ndarray, kernel, settings: Convolution) -> np.ndarray:
    """The checked kernel as float32 for these pixels: normalised when the settings say so,
    rotated 180° for a convolution."""
    weights = normalise_kernel(kernel) if settings.normalise else check_kernel(kernel)
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
    if settings.flip:
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


def preset_name(kernel: np.ndarray) -> str | None:
    """The preset `kernel` is (same shape and numbers), or None for a kernel of one's own."""
    kernel = np.asarray(kernel)
    return next(
        (n for n, k in PRESETS.items() if k.shape == kernel.shape and np.array_equal(k, kernel)),
        None,
    )
