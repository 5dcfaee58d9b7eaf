"""Distinct photos for the benchmarks: per-image caches must miss, so no two calls share pixels."""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import Image, ImageOps

SIZE = (640, 480)  # a typical phone photo after the lab's intake, landscape


@functools.lru_cache(maxsize=8)
def photos(count: int, size: tuple[int, int] = SIZE) -> tuple[Image.Image, ...]:
    """`count` different RGB photos of `size`: crops, flips and small shifts of the samples."""
    from vlmlab.images import sample_images

    bases = list(sample_images().values())
    out = []
    for i in range(count):
        base = bases[i % len(bases)]
        round_ = i // len(bases)
        scale = 1.05 + 0.07 * (round_ % 7)  # zoom in a little more each round: new pixels
        width, height = round(base.width * scale), round(base.height * scale)
        grown = base.resize((width, height), Image.Resampling.BILINEAR)
        left, top = (
            (round_ * 7) % (width - base.width + 1),
            (round_ * 5) % (height - base.height + 1),
        )
        photo = grown.crop((left, top, left + base.width, top + base.height))
        if round_ % 2:
            photo = ImageOps.mirror(photo)
        out.append(ImageOps.fit(photo, size, Image.Resampling.BILINEAR))
    return tuple(out)


def photo_files(folder: Path, count: int, size: tuple[int, int] = SIZE) -> list[str]:
    """The same photos as JPEG files (what a browser or gradio_client uploads)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, photo in enumerate(photos(count, size)):
        path = folder / f"photo-{size[0]}x{size[1]}-{i:03d}.jpg"
        if not path.exists():
            photo.save(path, quality=92)
        paths.append(str(path))
    return paths
