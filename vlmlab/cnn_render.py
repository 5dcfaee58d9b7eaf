"""Drawing for the CNN tab: every channel of a layer as a grid ("What is happening?" slide), one
channel large and over the photo, and the first layer's learned filters as small RGB images
(Krizhevsky et al. 2012, fig. 3). Switching layer or channel must stay cheap, so feature maps are
drawn as one-byte palette images (viridis, plus white gaps and a red frame), vectorised in numpy.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

GRID_SIDE = 768  # about how wide a channel grid is drawn, in pixels
GAP = 2  # pixels between tiles; the chosen tile is framed in this gap
LEVELS = 254  # palette entries 0–253 are the colour map …
WHITE, RED = 254, 255  # … then the gaps and the frame
FRAME_RGB = (255, 32, 32)
MAP_COLOURS = "viridis"
LARGE_SIDE = 336  # the chosen channel, drawn large


@dataclass(frozen=True)
class GridLayout:
    """Where the tiles of a grid lie, to turn a click back into a tile index."""

    count: int
    columns: int
    tile_height: int
    tile_width: int
    gap: int = GAP

    def index_at(self, x: float, y: float) -> int | None:
        """The tile under pixel (x, y), or None for a gap or the empty end of the last row."""
        column, dx = divmod(int(x) - self.gap, self.tile_width + self.gap)
        row, dy = divmod(int(y) - self.gap, self.tile_height + self.gap)
        index = row * self.columns + column
        inside = 0 <= column < self.columns and dx < self.tile_width and dy < self.tile_height
        return index if inside and 0 <= index < self.count else None


@functools.lru_cache(maxsize=4)
def palette(cmap: str = MAP_COLOURS) -> list[int]:
    """768 ints for `Image.putpalette`: the colour map in LEVELS steps, then white and red."""
    colours = matplotlib.colormaps[cmap](np.linspace(0, 1, LEVELS), bytes=True)[:, :3]
    return [*colours.ravel().tolist(), 255, 255, 255, *FRAME_RGB]


def as_float32(values: np.ndarray) -> np.ndarray:
    """Stored half-precision activations as float32 (torch converts them ~15× faster than numpy)."""
    if values.dtype == np.float16:
        return torch.from_numpy(np.ascontiguousarray(values)).float().numpy()  # a new array
    return values.astype(np.float32, copy=False)


def stretch_each(maps: np.ndarray, top: int = LEVELS - 1) -> np.ndarray:
    """(N, …) floats → uint8 0…top, each map stretched on its own (a flat map stays 0)."""
    maps = as_float32(maps)
    axes = tuple(range(1, maps.ndim))
    lo = maps.min(axis=axes, keepdims=True)
    span = maps.max(axis=axes, keepdims=True) - lo
    scale = np.divide(float(top), span, out=np.zeros_like(span), where=span > 0)
    return ((maps - lo) * scale).astype(np.uint8)


def _tile_size(height: int, width: int, columns: int) -> tuple[int, int]:
    """Whole-number magnification for small maps (honest square pixels), shrinking for large."""
    target = max(4, GRID_SIDE // columns - GAP)
    side = max(height, width)
    if side <= target:
        factor = target // side
        return height * factor, width * factor
    scale = target / side
    return max(1, round(height * scale)), max(1, round(width * scale))


def _fit(levels_of, maps: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, int]:
    """(N, H, W) maps → (N, h, w) palette levels and the whole-number factor that enlarges them
    to `size` (1 when they were area-shrunk to it instead)."""
    height = maps.shape[1]
    if size[0] >= height:  # stretch the small maps; `assemble` repeats their pixels
        return levels_of(maps), size[0] // height
    stack = torch.from_numpy(as_float32(maps))[None]  # (1, N, H, W)
    return levels_of(F.interpolate(stack, size=size, mode="area")[0].numpy()), 1


def assemble(tiles: np.ndarray, columns: int, fill, factor: int = 1) -> np.ndarray:
    """(N, h, w) or (N, h, w, 3) tiles → one grid, each tile's pixels repeated `factor` times
    each way, `fill` around and between them. Written once, straight into the grid."""
    n, h, w = tiles.shape[:3]
    extra = tiles.shape[3:]
    tall, wide = h * factor, w * factor
    rows = -(-n // columns)
    grid = np.empty((rows * (tall + GAP) + GAP, columns * (wide + GAP) + GAP) + extra, np.uint8)
    grid[...] = fill
    # A view of the grid as (row, column, y, repeat, x): each tile row written `factor` times.
    s0, s1 = grid.strides[:2]
    cells = np.lib.stride_tricks.as_strided(
        grid[GAP:, GAP:],
        shape=(rows, columns, h, factor, wide) + extra,
        strides=((tall + GAP) * s0, (wide + GAP) * s1, factor * s0, s0, s1) + grid.strides[2:],
        writeable=True,
    )
    pixels = (tiles.repeat(factor, axis=2) if factor > 1 else tiles)[
        :, :, None
    ]  # (N, h, 1, wide, …)
    full = n // columns
    cells[:full] = pixels[: full * columns].reshape((full, columns) + pixels.shape[1:])
    if n > full * columns:
        cells[full, : n - full * columns] = pixels[full * columns :]
    return grid


def framed(grid: np.ndarray, layout: GridLayout, index: int) -> Image.Image:
    """A copy of an `assemble`d grid with tile `index` framed in red (in the gap), as an image."""
    grid = grid.copy()
    h, w = layout.tile_height, layout.tile_width
    row, column = divmod(index, layout.columns)
    top, left = row * (h + GAP), column * (w + GAP)  # the frame's outer corner
    bottom, right = top + h + 2 * GAP, left + w + 2 * GAP
    colour = RED if grid.ndim == 2 else FRAME_RGB
    grid[top : top + GAP, left:right] = colour
    grid[bottom - GAP : bottom, left:right] = colour
    grid[top:bottom, left : left + GAP] = colour
    grid[top:bottom, right - GAP : right] = colour
    return _palette_image(grid) if grid.ndim == 2 else Image.fromarray(grid)


def _palette_image(levels: np.ndarray) -> Image.Image:
    image = Image.fromarray(levels)
    image.putpalette(palette())
    return image


def channel_grid(maps: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, GridLayout]:
    """Every channel of one layer, in `order`, each stretched on its own: (palette levels, layout).

    maps: (C, H, W) activations; order: (C,) channel numbers, first shown first.
    """
    count, height, width = maps.shape
    columns = math.ceil(math.sqrt(count))
    size = _tile_size(height, width, columns)
    tiles, factor = _fit(stretch_each, maps[order], size)  # (C, h, w) palette levels
    return assemble(tiles, columns, WHITE, factor), GridLayout(count, columns, *size)


def large_channel(values: np.ndarray, *, side: int = LARGE_SIDE) -> Image.Image:
    """One (H, W) feature map, coloured and enlarged with square pixels (no invented detail)."""
    image = _palette_image(stretch_each(values[None])[0])
    return image.resize((side, side), Image.Resampling.NEAREST)


def backdrop(view: Image.Image) -> Image.Image:
    """The model's view of the photo in gray (as RGB): under an overlay, colour is the map's."""
    return view.convert("L").convert("RGB")


def channel_overlay(gray: Image.Image, values: np.ndarray) -> Image.Image:
    """One (H, W) feature map stretched smoothly over `backdrop(view)`: the map's colours are
    opaque where the channel fires and faint where it is quiet."""
    levels = Image.fromarray(stretch_each(values[None])[0])
    levels = levels.resize(gray.size, Image.Resampling.BILINEAR)
    colours = levels.copy()
    colours.putpalette(palette())
    return Image.composite(colours.convert("RGB"), gray, levels.point(_OPACITY))


# Level 0 (quiet) lets 15% of the colour through, the top level 85%.
_OPACITY = [round(255 * (0.15 + 0.7 * min(v, LEVELS - 1) / (LEVELS - 1))) for v in range(256)]


def filter_grid(weights: np.ndarray, *, tile: int = 44) -> tuple[np.ndarray, GridLayout]:
    """Learned first-layer filters (N, 3, k, k) as RGB tiles, each stretched to 0–255 on its own."""
    n, _, k, _ = weights.shape
    rgb = stretch_each(weights, top=255).transpose(0, 2, 3, 1)  # (N, k, k, 3), colours together
    factor = max(1, tile // k)
    columns = min(16, math.ceil(math.sqrt(n)))
    return assemble(rgb, columns, 255, factor), GridLayout(n, columns, k * factor, k * factor)
