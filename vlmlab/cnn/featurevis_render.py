"""Drawing for feature visualisation (Olah et al., Distill 2017): the dataset examples as labelled
tiles, and an atlas of many channels' images in one labelled grid (OpenAI Microscope's pages).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from vlmlab.render import current_style

EXAMPLE_SIDE = 112  # a dataset example's crop, enlarged for the eye
LABEL_HEIGHT = 16  # pixels of white under each atlas tile for its channel number
GAP = 4


def example_tiles(examples: Sequence, *, side: int = EXAMPLE_SIDE) -> list[tuple[Image.Image, str]]:
    """Each dataset example's crop, enlarged to side×side, with a caption ("chelsea: 2.31")."""
    return [
        (
            example.crop.resize((side, side), Image.Resampling.BICUBIC),
            f"{example.source}: {example.value:.3g}",
        )
        for example in examples
    ]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def atlas(
    images: Sequence[Image.Image],
    labels: Sequence[str],
    *,
    tile: int = 128,
    columns: int | None = None,
) -> Image.Image:
    """Many channels' images in one grid, each tile×tile with its label under it."""
    count = len(images)
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = max(1, -(-count // columns))
    label_height = current_style().size(LABEL_HEIGHT)  # larger in the projector view
    cell_w, cell_h = tile + GAP, tile + label_height + GAP
    canvas = Image.new("RGB", (columns * cell_w + GAP, rows * cell_h + GAP), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(label_height - 4)
    for i, (image, label) in enumerate(zip(images, labels)):
        row, column = divmod(i, columns)
        left, top = GAP + column * cell_w, GAP + row * cell_h
        canvas.paste(
            image.convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS), (left, top)
        )
        draw.text(
            (left + tile / 2, top + tile + 1), str(label), fill="black", font=font, anchor="ma"
        )
    return canvas
