"""Drawing, kept apart from computing: results in, images or figures out, for both faces.

Figures are `matplotlib.figure.Figure` objects (never pyplot state) and are closed by the
helpers that turn them into images.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image


def figure_to_image(figure: Figure, *, dpi: int = 100) -> Image.Image:
    """Render a figure to an RGB image and release it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    figure.clear()
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def to_uint8(values: np.ndarray, mode: str = "minmax") -> np.ndarray:
    """Map raw values to 0–255 for display: "clip" (as is), "abs" (|x|) or "minmax" (stretch)."""
    a = np.asarray(values, dtype=np.float32)
    if mode == "abs":
        a = np.abs(a)
    if mode in ("minmax", "abs"):
        lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def colorize(values: np.ndarray, cmap: str = "viridis", *, vmin=None, vmax=None) -> np.ndarray:
    """A 2-D array as an RGB uint8 image through a matplotlib colour map."""
    a = np.asarray(values, dtype=np.float32)
    lo = float(a.min()) if vmin is None else vmin
    hi = float(a.max()) if vmax is None else vmax
    scaled = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    table = _colour_table(cmap)
    # The colour map's own lookup (x·N, the top edge in the last bin), without its per-call setup.
    index = np.clip(np.nan_to_num(scaled) * len(table), 0, len(table) - 1).astype(np.intp)
    return table[index]


@functools.lru_cache(maxsize=16)
def _colour_table(cmap: str) -> np.ndarray:
    colours = matplotlib.colormaps[cmap]
    table = colours(np.arange(colours.N), bytes=True)[:, :3]
    table.setflags(write=False)
    return table


def overlay_heatmap(
    image: Image.Image, heat: np.ndarray, *, alpha: float = 0.5, cmap: str = "jet"
) -> Image.Image:
    """Blend a heat map (any H×W, upsampled smoothly) over a photo, like show_cam_on_image."""
    colours = Image.fromarray(colorize(heat, cmap)).resize(image.size, Image.Resampling.BILINEAR)
    return Image.blend(image.convert("RGB"), colours, alpha)


def tile(images: Sequence[np.ndarray | Image.Image], *, columns: int, gap: int = 2) -> Image.Image:
    """Small images of one size in a grid, white gaps between them (channel grids, filters)."""
    tiles = [np.asarray(Image.fromarray(t) if isinstance(t, np.ndarray) else t) for t in images]
    if not tiles:
        return Image.new("RGB", (1, 1), "white")
    tiles = [np.repeat(t[..., None], 3, axis=2) if t.ndim == 2 else t[..., :3] for t in tiles]
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    canvas = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        canvas[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = t
    return Image.fromarray(canvas)


# ---------------------------------------------------------------------------------------------
# Grounding maps: patch-grid maps over the photo as a model saw it (CLIP, captioning, VQA)

GROUNDING_CMAP = "inferno"
GROUNDING_ALPHA = 0.6


def map_over(view: Image.Image, heat: np.ndarray, *, side: int = 224) -> Image.Image:
    """A (rows, cols) map over the photo, one flat block per patch, scaled from 0 (dark) to the
    map's own maximum (bright); the picture is drawn with its longer side `side` pixels."""
    heat = np.asarray(heat, dtype=np.float32)
    scale = side / max(view.size)
    size = (max(1, round(view.width * scale)), max(1, round(view.height * scale)))
    photo = view.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    top = float(heat.max()) if heat.size else 0.0
    colours = colorize(heat, GROUNDING_CMAP, vmin=0.0, vmax=top if top > 0 else 1.0)
    blocks = Image.fromarray(colours).resize(size, Image.Resampling.NEAREST)
    return Image.blend(photo, blocks, GROUNDING_ALPHA)


def labelled_tiles(
    pictures: Sequence[Image.Image], labels: Sequence[str], *, columns: int, gap: int = 4
) -> Image.Image:
    """Small multiples: each picture with its label above it, in a grid (all one size)."""
    tiles = [
        np.vstack([_label_strip(label, picture.width), np.asarray(picture.convert("RGB"))])
        for picture, label in zip(pictures, labels, strict=True)
    ]
    return tile(tiles, columns=max(1, min(columns, len(tiles))), gap=gap)


@functools.lru_cache(maxsize=256)
def _label_strip(text: str, width: int) -> np.ndarray:
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    while text and font.getlength(text) > width - 4:  # cut to fit, with an ellipsis
        text = text[:-2] + "…" if len(text) > 2 else ""
    strip = Image.new("RGB", (width, 18), "white")
    ImageDraw.Draw(strip).text((2, 1), text, font=font, fill=(0, 0, 0))
    pixels = np.asarray(strip)
    pixels.setflags(write=False)
    return pixels
