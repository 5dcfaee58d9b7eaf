"""Distinct photos for the benchmarks: per-image caches must miss, so no two calls share pixels.

`photos(n)` are the same n photos every time (for side-by-side calls in one process);
`photo_files(n)` are n files never handed out before in this run, because the launched app,
shared by several areas, keeps its own per-photo caches.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

from PIL import Image, ImageOps

SIZE = (640, 480)  # a typical phone photo after the lab's intake, landscape
_handed_out = itertools.count(10_000)  # photo numbers for files; `photos()` keeps 0, 1, 2, …


@functools.lru_cache(maxsize=8)
def photos(count: int, size: tuple[int, int] = SIZE) -> tuple[Image.Image, ...]:
    """`count` different RGB photos of `size`: crops, flips and small shifts of the samples."""
    return tuple(photo(i, size) for i in range(count))


def photo(number: int, size: tuple[int, int] = SIZE) -> Image.Image:
    """Photo number `number`: a sample, zoomed, shifted and maybe mirrored by its number, with a
    small patch of its own colour in the middle (kept by every model's resize and centre crop)."""
    from vlmlab.images import sample_images

    bases = list(sample_images().values())
    base = bases[number % len(bases)]
    variant = number // len(bases)
    scale = 1.05 + 0.07 * (variant % 7)  # zoom in a little more each round: new pixels
    width, height = round(base.width * scale), round(base.height * scale)
    grown = base.resize((width, height), Image.Resampling.BILINEAR)
    left = (variant * 7) % (width - base.width + 1)
    top = (variant * 5) % (height - base.height + 1)
    picture = grown.crop((left, top, left + base.width, top + base.height))
    if variant % 2:
        picture = ImageOps.mirror(picture)
    picture = ImageOps.fit(picture, size, Image.Resampling.BILINEAR)
    colour = ((number * 53) % 256, (number * 97 + 40) % 256, (number // 256 * 71) % 256)
    middle = (size[0] // 2 - 12, size[1] // 2 - 12, size[0] // 2 + 12, size[1] // 2 + 12)
    picture.paste(colour, middle)
    return picture


def photo_files(folder: Path, count: int, size: tuple[int, int] = SIZE) -> list[str]:
    """`count` new photos as JPEG files (what a browser or gradio_client uploads)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in itertools.islice(_handed_out, count):
        path = folder / f"photo-{size[0]}x{size[1]}-{number}.jpg"
        photo(number, size).save(path, quality=92)
        paths.append(str(path))
    return paths
