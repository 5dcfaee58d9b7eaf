"""Images are numbers: the lecture's "grayscale images are matrices (0–255)", "colour images are
C×H×W tensors", and RGB beside other colour spaces (HSV, HSL, Lab, LUV, XYZ, CMYK), each
converted by a well-kept library (scikit-image, OpenCV, Pillow).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from vlmlab.checks import whole_number
from vlmlab.errors import LabError
from vlmlab.images import MAX_PIXELS, ImageError, ImageSource, load_image

MAX_REGION = 16  # the largest magnified region side: 16×16 numbers stay readable


def rgb_pixels(image: ImageSource | np.ndarray) -> np.ndarray:
    """`image` as (H, W, 3) uint8. PIL images and arrays keep their size; files are read at
    the lab's working size (see `load_image`)."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape[-1:] == (3,):
        if image.ndim != 3 or image.shape[0] * image.shape[1] > MAX_PIXELS:
            raise ImageError("An image array must be H×W×3 with at most 64 million pixels.")
        return np.ascontiguousarray(image)
    if isinstance(image, Image.Image) and image.mode == "RGB":
        return np.asarray(image)
    if isinstance(image, Image.Image):
        return np.asarray(load_image(image, max_side=max(max(image.size), 1)))
    if isinstance(image, np.ndarray):
        return np.asarray(load_image(image, max_side=max(max(image.shape[:2], default=1), 1)))
    return np.asarray(load_image(image))


def shrink(image: ImageSource | np.ndarray, max_side: int) -> Image.Image:
    """A copy no larger than max_side × max_side (for previews: colour planes, thumbnails)."""
    small = Image.fromarray(rgb_pixels(image))
    small.thumbnail((max_side, max_side))
    return small


# ---------------------------------------------------------------------------------------------
# A region as numbers, the C×H×W tensor, one pixel


@dataclass(frozen=True)
class PixelRegion:
    """A small square of the photo, as the numbers a computer stores."""

    top: int
    left: int
    rgb: np.ndarray  # (h, w, 3) uint8
    gray: np.ndarray  # (h, w) uint8, Pillow's "L" (BT.601 luma, rounded)

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[:2]


def pick_region(image: ImageSource | np.ndarray, top: int, left: int, size: int = 8) -> PixelRegion:
    """The size×size region whose top-left pixel is (top, left), moved inside the image."""
    rgb = rgb_pixels(image)
    size = _check_region_size(size)
    height, width = rgb.shape[:2]
    top = int(np.clip(_whole(top, "row"), 0, max(height - size, 0)))
    left = int(np.clip(_whole(left, "column"), 0, max(width - size, 0)))
    crop = np.ascontiguousarray(rgb[top : top + size, left : left + size])
    gray = np.asarray(Image.fromarray(crop).convert("L"))
    return PixelRegion(top=top, left=left, rgb=crop, gray=gray)


def region_around(
    image: ImageSource | np.ndarray, row: int, col: int, size: int = 8
) -> PixelRegion:
    """The region centred (as near as the edges allow) on a clicked pixel."""
    size = _check_region_size(size)
    return pick_region(
        image, _whole(row, "row") - size // 2, _whole(col, "column") - size // 2, size
    )


def centred_region(image: ImageSource | np.ndarray, size: int = 8) -> PixelRegion:
    """The size×size region in the middle of the photo (where a new photo's region starts)."""
    height, width = rgb_pixels(image).shape[:2]
    size = _check_region_size(size)
    return pick_region(image, (height - size) // 2, (width - size) // 2, size)


def channel_planes(image: ImageSource | np.ndarray) -> np.ndarray:
    """The photo as a C×H×W tensor (3, H, W) uint8: the layout PyTorch and torchvision use."""
    return np.ascontiguousarray(rgb_pixels(image).transpose(2, 0, 1))


@dataclass(frozen=True)
class PixelValue:
    """One pixel, as stored (uint8, 0–255) and as a network sees it after ToTensor (float, 0–1)."""

    row: int
    col: int
    rgb: tuple[int, int, int]
    floats: tuple[float, float, float]  # rgb / 255
    gray: int  # Pillow's "L"


def read_pixel(image: ImageSource | np.ndarray, row: int, col: int) -> PixelValue:
    """The pixel at (row, col), which must lie inside the image."""
    rgb = rgb_pixels(image)
    row, col = _whole(row, "row"), _whole(col, "column")
    height, width = rgb.shape[:2]
    if not (0 <= row < height and 0 <= col < width):
        raise LabError(f"Pixel ({row}, {col}) is outside the {height}×{width} image.")
    value = rgb[row, col]
    gray = int(np.asarray(Image.fromarray(value[None, None]).convert("L"))[0, 0])
    floats = value.astype(np.float32) / np.float32(255)
    return PixelValue(row, col, tuple(int(v) for v in value), tuple(float(f) for f in floats), gray)


@dataclass(frozen=True)
class TensorFacts:
    """The photo's layouts and one pixel's numbers (`pixels_render.describe_tensor` says them)."""

    height: int
    width: int
    channels: int
    pixel: PixelValue


def tensor_facts(image: ImageSource | np.ndarray, row: int, col: int) -> TensorFacts:
    """How the photo is stored and how a network receives it, with the pixel at (row, col)."""
    rgb = rgb_pixels(image)
    height, width, channels = rgb.shape
    return TensorFacts(height, width, channels, read_pixel(rgb, row, col))


def _check_region_size(size) -> int:
    size = _whole(size, "region size")
    if not 1 <= size <= MAX_REGION:
        raise LabError(f"The region must be between 1 and {MAX_REGION} pixels wide.")
    return size


def _whole(value, what: str) -> int:
    return whole_number(value, what, -(10**9), 10**9, message=f"The {what} must be a whole number.")


# ---------------------------------------------------------------------------------------------
# Colour spaces


@dataclass(frozen=True)
class ColorPlane:
    """One channel of a colour space: its values and the range they take over all sRGB colours."""

    name: str
    meaning: str
    values: np.ndarray  # (H, W) float32
    low: float
    high: float


@dataclass(frozen=True)
class ColorSpaceView:
    """A photo in one colour space, channel by channel."""

    space: str
    planes: tuple[ColorPlane, ...]
    library: str  # who computed it


# name → (channels (name, meaning, nominal range or None = measured over sRGB), library)
COLOR_SPACES: dict[str, tuple[tuple[tuple[str, str, tuple[float, float] | None], ...], str]] = {
    "RGB": (
        (("R", "red", (0, 255)), ("G", "green", (0, 255)), ("B", "blue", (0, 255))),
        "the stored bytes",
    ),
    "HSV": (
        (("H", "hue, degrees", (0, 360)), ("S", "saturation", (0, 1)), ("V", "value", (0, 1))),
        "scikit-image rgb2hsv",
    ),
    "HSL": (
        (("H", "hue, degrees", (0, 360)), ("S", "saturation", (0, 1)), ("L", "lightness", (0, 1))),
        "OpenCV COLOR_RGB2HLS",
    ),
    "Lab": (
        (("L*", "lightness", (0, 100)), ("a*", "green − red", None), ("b*", "blue − yellow", None)),
        "scikit-image rgb2lab (D65)",
    ),
    "LUV": (
        (("L*", "lightness", (0, 100)), ("u*", "green − red", None), ("v*", "blue − yellow", None)),
        "scikit-image rgb2luv (D65)",
    ),
    "XYZ": (
        (("X", "mix of cone responses", None), ("Y", "luminance", None), ("Z", "≈ blue", None)),
        "scikit-image rgb2xyz (D65)",
    ),
    "CMYK": (
        (
            ("C", "cyan ink", (0, 1)),
            ("M", "magenta ink", (0, 1)),
            ("Y", "yellow ink", (0, 1)),
            ("K", "black ink", (0, 1)),
        ),
        "Pillow convert('CMYK'), then black extracted: K = min(C, M, Y)",
    ),
}


def convert_color_space(image: ImageSource | np.ndarray, space: str) -> ColorSpaceView:
    """The photo in `space` (one of COLOR_SPACES), one float32 plane per channel."""
    if space not in COLOR_SPACES:
        raise LabError(f"The colour space must be one of {', '.join(COLOR_SPACES)}.")
    channels, library = COLOR_SPACES[space]
    values = _convert(rgb_pixels(image), space)  # (H, W, C) float32
    ranges = _ranges(space)
    planes = tuple(
        ColorPlane(name, meaning, np.ascontiguousarray(values[..., i]), *ranges[i])
        for i, (name, meaning, _) in enumerate(channels)
    )
    return ColorSpaceView(space, planes, library)


def pixel_in_color_spaces(rgb: tuple[int, int, int]) -> dict[str, tuple[tuple[str, float], ...]]:
    """One colour, (R, G, B) 0–255, in every colour space: {space: ((channel, value), ...)}."""
    pixel = np.array(rgb, dtype=np.uint8).reshape(1, 1, 3)
    return {
        space: tuple(
            (name, float(v))
            for (name, _, _), v in zip(COLOR_SPACES[space][0], _convert(pixel, space)[0, 0])
        )
        for space in COLOR_SPACES
    }


def _convert(rgb: np.ndarray, space: str) -> np.ndarray:
    """(H, W, 3) uint8 → (H, W, C) float32 in `space`."""
    from skimage import color  # imported here: a second or so at first use

    unit = rgb.astype(np.float32) / np.float32(255)  # (H, W, 3) in 0–1
    if space == "RGB":
        out = rgb.astype(np.float32)
    elif space == "HSV":
        out = color.rgb2hsv(unit) * np.array([360, 1, 1], dtype=np.float32)
    elif space == "HSL":
        hls = cv2.cvtColor(unit, cv2.COLOR_RGB2HLS)  # float input: H in degrees, L and S 0–1
        out = hls[..., [0, 2, 1]]  # → H, S, L
    elif space == "Lab":
        out = color.rgb2lab(unit)
    elif space == "LUV":
        out = color.rgb2luv(unit)
    elif space == "XYZ":
        out = color.rgb2xyz(unit)
    else:  # CMYK: Pillow gives C = 255 − R, M = 255 − G, Y = 255 − B and K = 0
        cmy = np.asarray(Image.fromarray(rgb).convert("CMYK"), dtype=np.float32)[..., :3] / 255
        black = cmy.min(axis=-1, keepdims=True)
        ink = np.where(black < 1, (cmy - black) / np.maximum(1 - black, 1e-6), 0)
        out = np.concatenate([ink, black], axis=-1)
    return np.asarray(out, dtype=np.float32)


@functools.cache
def _ranges(space: str) -> tuple[tuple[float, float], ...]:
    """Each channel's range: nominal where the space defines one, else measured over sRGB."""
    steps = np.linspace(0, 255, 33).round().astype(np.uint8)  # a 33³ grid of the RGB cube
    cube = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 33, 3)
    values = _convert(cube, space).reshape(-1, len(COLOR_SPACES[space][0]))
    ranges = []
    for i, (_, _, nominal) in enumerate(COLOR_SPACES[space][0]):
        if nominal:
            ranges.append((float(nominal[0]), float(nominal[1])))
            continue
        low, high = float(values[:, i].min()), float(values[:, i].max())
        scale = 1.0 if high - low >= 10 else 100.0  # whole numbers for Lab/LUV, 0.01 for XYZ
        ranges.append((float(np.floor(low * scale)) / scale, float(np.ceil(high * scale)) / scale))
    return tuple(ranges)
