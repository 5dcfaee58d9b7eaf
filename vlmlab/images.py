"""Safe image intake: every photo a user gives the lab passes through `load_image`.

Formats come from an allow-list, decompression bombs are refused from the header before any
pixel is decoded, EXIF orientation is applied, and every mode ends up as 8-bit RGB.
"""

from __future__ import annotations

import functools
import io
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vlmlab.errors import LabError

# PIL format names we decode (JPEG includes multi-picture MPO); no other plugin is ever tried.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
FILE_TYPES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
MAX_PIXELS = 64_000_000  # read from the header, before decoding
MAX_FILE_BYTES = 50 * 1024 * 1024
WORKING_SIDE = 2048  # larger photos are scaled down to this longest side

ImageSource = Union[str, os.PathLike, bytes, bytearray, IO[bytes], Image.Image, np.ndarray]


class ImageError(LabError):
    """An image the lab cannot use, with one sentence saying why."""


@dataclass(frozen=True)
class Intake:
    """A decoded photo and what the lab did to it on the way in (for the user to read)."""

    image: Image.Image  # RGB, 8-bit
    notes: tuple[str, ...] = ()


def to_uint8(values: np.ndarray, mode: str = "minmax") -> np.ndarray:
    """Map raw values to 0–255 pixels: "clip" (as is), "abs" (|x|) or "minmax" (stretch)."""
    a = np.asarray(values, dtype=np.float32)
    if mode == "abs":
        a = np.abs(a)
    if mode in ("minmax", "abs"):
        lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def load_image(source: ImageSource, *, max_side: int = WORKING_SIDE) -> Image.Image:
    """Decode `source` into an 8-bit RGB image, or raise `ImageError` with a clear sentence.

    The notes of `read_image` (scaled down, first frame only…) are kept in `image.info["notes"]`.
    """
    intake = read_image(source, max_side=max_side)
    image = intake.image.copy()
    image.info["notes"] = intake.notes
    return image


def rgb_image(image: ImageSource) -> Image.Image:
    """The photo as 8-bit RGB: already-decoded RGB images pass through untouched (the same
    object, so per-photo caches find it), anything else goes through `load_image`."""
    if isinstance(image, Image.Image) and image.mode == "RGB":
        return image
    return load_image(image)


def read_image(source: ImageSource, *, max_side: int = WORKING_SIDE) -> Intake:
    """Like `load_image`, but returns the notes beside the image."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            stat = path.stat()
        except OSError:
            raise ImageError(f"The file {path.name!r} could not be found.") from None
        if not path.is_file():
            raise ImageError(f"{path.name!r} is not a file.")
        return _read_path(str(path.resolve()), stat.st_mtime_ns, stat.st_size, max_side)
    if isinstance(source, Image.Image):
        return _finish(source, [], max_side)
    if isinstance(source, np.ndarray):
        return _finish(_from_array(source), [], max_side)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(bytes(source)), len(source), max_side)
    if hasattr(source, "read"):
        data = source.read(MAX_FILE_BYTES + 1)
        return _decode(io.BytesIO(data), len(data), max_side)
    raise ImageError(
        f"The lab cannot read an image from a {type(source).__name__}; "
        "give it a file path, bytes, a PIL image or a numpy array."
    )


@functools.lru_cache(maxsize=16)
def _read_path(path: str, _mtime_ns: int, size: int, max_side: int) -> Intake:
    # Cached on (path, mtime, size): every tab decodes the session's photo, the first one pays.
    if size > MAX_FILE_BYTES:
        raise ImageError(_too_big_file(size))
    with open(path, "rb") as f:
        return _decode(f, size, max_side)


def _too_big_file(size: int) -> str:
    return (
        f"The file is {size / 2**20:.0f} MB; the lab accepts images up to "
        f"{MAX_FILE_BYTES // 2**20} MB. Please use a smaller copy."
    )


def _decode(fp: IO[bytes], size: int, max_side: int) -> Intake:
    if size == 0:
        raise ImageError("The file is empty: please choose a photo.")
    if size > MAX_FILE_BYTES:
        raise ImageError(_too_big_file(size))
    kinds = "PNG, JPEG, WebP, GIF, BMP or TIFF"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(fp, formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise ImageError(
            f"This file is not an image the lab can read; please use {kinds}."
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as bomb:
        claimed = re.search(r"\((\d+) pixels\)", str(bomb))  # Pillow: "Image size (N pixels) …"
        raise ImageError(_too_many_pixels(int(claimed.group(1)) if claimed else None)) from None
    except (OSError, SyntaxError, ValueError):
        raise ImageError(f"This file looks damaged; please re-save it as {kinds}.") from None

    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError("The image has no pixels.")
    if width * height > MAX_PIXELS:
        raise ImageError(_too_many_pixels((width, height)))

    notes = []
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        kind = "pages" if image.format == "TIFF" else "frames"
        notes.append(f"The file has {frames} {kind}; the lab uses the first one.")
        image.seek(0)
    if image.format in ("JPEG", "MPO") and max(width, height) > 2 * max_side:
        image.draft("RGB", (max_side, max_side))  # decode big JPEGs at 1/2, 1/4 or 1/8 scale
    if _turned_sideways(image):  # the note gives the size as the photo is seen, upright
        width, height = height, width
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ImageError(
            f"The image data is damaged or cut short; please re-save it as {kinds}."
        ) from None
    return _finish(image, notes, max_side, original=(width, height))


def _turned_sideways(image: Image.Image) -> bool:
    """Whether the EXIF orientation turns the photo by a quarter (so its width becomes height)."""
    try:
        return image.getexif().get(0x0112) in (5, 6, 7, 8)  # Orientation: transposed or rotated
    except (OSError, SyntaxError, ValueError, TypeError, KeyError):
        return False  # a damaged EXIF block: exif_transpose below leaves the photo as it is


def _too_many_pixels(size: tuple[int, int] | int | None) -> str:
    if isinstance(size, int):  # only the count is known (Pillow refused the header)
        claimed = f" ({size / 1_000_000:,.0f} megapixels)"
    else:
        claimed = f" ({size[0]}×{size[1]})" if size else ""
    return (
        f"The image is too large{claimed}: the lab accepts up to "
        f"{MAX_PIXELS // 1_000_000} megapixels. Please use a smaller copy."
    )


def _from_array(array: np.ndarray) -> Image.Image:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.size == 0:
        raise ImageError(
            f"An image array must be H×W, H×W×3 or H×W×4; this one is {'×'.join(map(str, a.shape))}."
        )
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise ImageError(_too_many_pixels((a.shape[1], a.shape[0])))
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageError("The image array contains NaN or infinite values.")
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0  # floats in 0–1, or already 0–255
        a = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
    elif a.dtype == np.uint16:
        a = _rescale_16bit(a)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a))


def _rescale_16bit(a: np.ndarray) -> np.ndarray:
    # 0–65535 onto 0–255 (divide by 257), so bright 16-bit pixels are not clipped to white.
    return np.rint(a.astype(np.float32) / 257.0).astype(np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return Image.fromarray(_rescale_16bit(np.asarray(image, dtype=np.uint16))).convert("RGB")
    if mode in ("I", "F"):
        a = np.asarray(image, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        return Image.fromarray(np.rint(a).astype(np.uint8)).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _finish(
    image: Image.Image, notes: list[str], max_side: int, original: tuple[int, int] | None = None
) -> Intake:
    if image.width * image.height > MAX_PIXELS:
        raise ImageError(_too_many_pixels(image.size))
    rgb = _to_rgb(image)
    width, height = original or rgb.size
    if max(rgb.size) > max_side:
        rgb = rgb.copy()
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if max(width, height) > max_side:
        notes.append(
            f"The photo was scaled down from {width}×{height} to {rgb.width}×{rgb.height} "
            "pixels to keep the lab fast."
        )
    if rgb is image:
        rgb = image.copy()
    rgb.info.clear()
    return Intake(rgb, tuple(notes))


# ---------------------------------------------------------------------------------------------
# Sample photos: real photographs that ship inside installed packages, so no network is needed.

_SKIMAGE_SAMPLES = ("chelsea", "astronaut", "coffee", "rocket", "camera")


@functools.lru_cache(maxsize=1)
def sample_images() -> dict[str, Image.Image]:
    """The lab's sample photos by name, RGB: scikit-image's classics and Grace Hopper."""
    import matplotlib.cbook
    import skimage.data

    photos = {name: load_image(getattr(skimage.data, name)()) for name in _SKIMAGE_SAMPLES}
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos["grace_hopper"] = load_image(f)
    return photos


@functools.lru_cache(maxsize=1)
def sample_files() -> dict[str, Path]:
    """The sample photos written once as PNG files in a temporary folder (for upload widgets)."""
    folder = Path(tempfile.gettempdir()) / "vlmlab-samples"
    folder.mkdir(exist_ok=True)
    paths = {}
    for name, image in sample_images().items():
        path = folder / f"{name}.png"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            image.save(tmp, format="PNG")
            tmp.replace(path)
        paths[name] = path
    return paths
