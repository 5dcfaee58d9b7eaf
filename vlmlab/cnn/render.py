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
from PIL import Image, ImageDraw

from vlmlab.cache import LRUCache
from vlmlab.render import (
    colour_bar_levels,
    current_style,
    font,
    overlay_heatmap,
    value_ticks,
    with_colour_bar,
)

GRID_SIDE = 768  # about how wide a channel grid is drawn, in pixels
GAP = 2  # pixels between tiles; the chosen tile is framed in this gap
LEVELS = 253  # palette entries 0–252 are the colour map …
BLACK, WHITE, RED = 253, 254, 255  # … then text, the gaps and the frame
FRAME_RGB = (255, 32, 32)
MAP_COLOURS = "viridis"
LARGE_SIDE = 336  # the chosen channel, drawn large

_grids = LRUCache(64)  # (capture key, layer, order) -> grid palette levels
_backdrops = LRUCache(8)  # capture key -> the model's view in gray
_filter_grids = LRUCache(12)  # Filters.key -> filter grid pixels


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
    """768 ints for `Image.putpalette`: the colour map in LEVELS steps, then black, white, red."""
    colours = matplotlib.colormaps[cmap](np.linspace(0, 1, LEVELS), bytes=True)[:, :3]
    return [*colours.ravel().tolist(), 0, 0, 0, 255, 255, 255, *FRAME_RGB]


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


def grid_layout(count: int, height: int, width: int) -> GridLayout:
    """Where `channel_grid` puts `count` tiles of (height, width) maps (no drawing needed)."""
    columns = math.ceil(math.sqrt(count))
    return GridLayout(count, columns, *_tile_size(height, width, columns))


def channel_grid(maps: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, GridLayout]:
    """Every channel of one layer, in `order`, each stretched on its own: (palette levels, layout).

    maps: (C, H, W) activations; order: (C,) channel numbers, first shown first.
    """
    layout = grid_layout(*maps.shape)
    columns, size = layout.columns, (layout.tile_height, layout.tile_width)
    tiles, factor = _fit(stretch_each, maps[order], size)  # (C, h, w) palette levels
    grid = number_tiles(assemble(tiles, columns, WHITE, factor), layout, order)
    bar = colour_bar_levels(
        grid.shape[1],
        LEVELS,
        [(0.0, "its lowest"), (1.0, "its highest")],
        "each tile on its own scale: the channel's activation",
        ink=BLACK,
        paper=WHITE,
    )
    return np.vstack([grid, bar]), layout


def number_tiles(grid: np.ndarray, layout: GridLayout, numbers) -> np.ndarray:
    """Write each tile's channel number in its top-left corner (white on black), where it fits."""
    normal = int(np.clip(layout.tile_width // 4, 9, 16))
    size = current_style().size(normal)  # larger in the projector view, as far as a tile allows
    largest = str(max(numbers, default=0))
    while size > normal and (
        font(size).getlength(largest) + 4 > layout.tile_width or size + 3 > layout.tile_height
    ):
        size -= 1
    text = font(size)
    widest = text.getlength(largest)
    if widest + 4 > layout.tile_width or size + 3 > layout.tile_height:
        return grid  # tiles too small to carry a number: the caption and a click tell it
    image = Image.fromarray(grid)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # crisp: every pixel stays a palette level
    for index, number in enumerate(numbers):
        row, column = divmod(index, layout.columns)
        x = GAP + column * (layout.tile_width + GAP)
        y = GAP + row * (layout.tile_height + GAP)
        words = str(int(number))
        draw.rectangle((x, y, x + text.getlength(words) + 3, y + size + 2), fill=BLACK)
        draw.text((x + 2, y + 1), words, font=text, fill=WHITE)
    return np.asarray(image)


ACTIVATION = "activation (the layer's output, no unit)"


def large_channel(values: np.ndarray, *, side: int = LARGE_SIDE) -> Image.Image:
    """One (H, W) feature map, coloured and enlarged with square pixels (no invented detail),
    with a colour bar of its values."""
    levels = np.asarray(Image.fromarray(stretch_each(values[None])[0]).resize(
        (side, side), Image.Resampling.NEAREST
    ))
    bar = colour_bar_levels(
        side, LEVELS, value_ticks(float(values.min()), float(values.max())), ACTIVATION,
        ink=BLACK, paper=WHITE,
    )
    return _palette_image(np.vstack([levels, bar]))


def backdrop(view: Image.Image, side: int = LARGE_SIDE) -> Image.Image:
    """The model's view of the photo in gray (as RGB), `side` wide: under an overlay, colour is
    the map's."""
    gray = view.convert("L")
    if side != gray.width:
        gray = gray.resize((side, round(gray.height * side / gray.width)), Image.Resampling.BICUBIC)
    return gray.convert("RGB")


def channel_overlay(gray: Image.Image, values: np.ndarray) -> Image.Image:
    """One (H, W) feature map stretched smoothly over `backdrop(view)`: the map's colours are
    opaque where the channel fires and faint where it is quiet."""
    levels = Image.fromarray(stretch_each(values[None])[0])
    levels = levels.resize(gray.size, Image.Resampling.BILINEAR)
    colours = levels.copy()
    colours.putpalette(palette())
    picture = Image.composite(colours.convert("RGB"), gray, levels.point(_OPACITY))
    return with_palette_bar(picture, values, ACTIVATION + "; faint = quiet")


def with_palette_bar(picture: Image.Image, values: np.ndarray, label: str) -> Image.Image:
    """An RGB picture coloured through `palette()` with the bar of `values` under it."""
    bar = colour_bar_levels(
        picture.width, LEVELS, value_ticks(float(values.min()), float(values.max())), label,
        ink=BLACK, paper=WHITE,
    )
    rgb = np.asarray(palette(), np.uint8).reshape(256, 3)[bar]
    return Image.fromarray(np.vstack([np.asarray(picture), rgb]))


@dataclass(frozen=True)
class FeaturePictures:
    """One layer of a capture drawn for a person: all channels, and the chosen one large."""

    grid: Image.Image  # every channel, small, the chosen one framed
    channel_image: Image.Image  # the chosen channel, large, with its colour bar
    overlay: Image.Image  # the chosen channel over the model's view of the photo


def draw_features(view) -> FeaturePictures:
    """Draw a `cnn.FeatureView`. The grid and the gray view are cached per capture, so switching
    channel only frames another tile and draws one map large."""

    def draw_grid():
        return channel_grid(view.maps, np.asarray(view.order))[0]

    key = (view.key, view.layer.name, view.ordering, current_style())  # numbers and bar per style
    grid = _grids.get_or_compute(key, draw_grid)
    gray = _backdrops.get_or_compute(view.key, lambda: backdrop(view.view))
    values = as_float32(view.maps[view.channel])  # (H, W)
    return FeaturePictures(
        grid=framed(grid, feature_layout(view), view.order.index(view.channel)),
        channel_image=large_channel(values),
        overlay=channel_overlay(gray, values),
    )


def feature_layout(view) -> GridLayout:
    """Where each channel of a `cnn.FeatureView` lies in its drawn grid."""
    return grid_layout(*view.maps.shape)


def channel_at(view, x: float, y: float) -> int | None:
    """The channel whose tile is under pixel (x, y) of the drawn grid, if any."""
    index = feature_layout(view).index_at(x, y)
    return None if index is None else view.order[index]


# Level 0 (quiet) lets 15% of the colour through, the top level 85%.
_OPACITY = [round(255 * (0.15 + 0.7 * min(v, LEVELS - 1) / (LEVELS - 1))) for v in range(256)]


EVIDENCE_SIDE = 448  # the Grad-CAM picture's width (the model's view enlarged)
EVIDENCE_COLOURS = "jet"


def evidence_picture(view: Image.Image, heat: np.ndarray, *, side: int = EVIDENCE_SIDE):
    """Grad-CAM heat (h, w) in [0, 1] over the model's view, enlarged, with its colour bar."""
    big = view.resize((side, round(view.height * side / view.width)), Image.Resampling.BICUBIC)
    picture = overlay_heatmap(big, heat, alpha=0.45, cmap=EVIDENCE_COLOURS)
    ticks = [(0.0, "0 (none)"), (0.5, "0.5"), (1.0, "1 (strongest)")]
    return with_colour_bar(picture, EVIDENCE_COLOURS, ticks, "Grad-CAM evidence for the class")


def draw_evidence(evidence) -> Image.Image:
    """A `gradcam.Evidence`: its heat over the model's view, enlarged, with the colour bar."""
    return evidence_picture(evidence.view, evidence.heat)


FILTER_TILE = 44  # about how many pixels wide a learned filter is drawn


def filter_layout(weights: np.ndarray, *, tile: int = FILTER_TILE) -> GridLayout:
    """Where `filter_grid` puts each of the (N, 3, k, k) filters."""
    n, _, k, _ = weights.shape
    factor = max(1, tile // k)
    return GridLayout(n, min(16, math.ceil(math.sqrt(n))), k * factor, k * factor)


def filter_grid(weights: np.ndarray, *, tile: int = FILTER_TILE) -> tuple[np.ndarray, GridLayout]:
    """Learned first-layer filters (N, 3, k, k) as RGB tiles, each stretched to 0–255 alone."""
    layout = filter_layout(weights, tile=tile)
    rgb = stretch_each(weights, top=255).transpose(0, 2, 3, 1)  # (N, k, k, 3), colours together
    factor = layout.tile_width // weights.shape[-1]
    return assemble(rgb, layout.columns, 255, factor), layout


def filter_picture(filters, selected: int | None = None) -> Image.Image:
    """A `cnn.Filters` as a grid of small RGB tiles, the `selected` one framed."""
    pixels = _filter_grids.get_or_compute(filters.key, lambda: filter_grid(filters.weights)[0])
    if selected is None:
        return Image.fromarray(pixels)
    filters.kernel(selected)  # checks the number
    return framed(pixels, filter_layout(filters.weights), int(selected))


def filter_at(filters, x: float, y: float) -> int | None:
    """The filter under pixel (x, y) of `filter_picture`, if any."""
    return filter_layout(filters.weights).index_at(x, y)


# ---------------------------------------------------------------------------------------------
# The revolution of depth, as the slide draws it

REVOLUTION = ("alexnet", "vgg19", "resnet152")  # the slide's road: 8 → 19 → 152 layers
# Where each network's words sit from its point (points), so neighbours do not overlap.
_LABEL_OFFSETS = {
    "alexnet": (10, -12, "left"),
    "vgg16": (12, -8, "left"),
    "vgg19": (-12, 8, "right"),
    "resnet50": (12, -10, "left"),
    "resnet152": (12, 0, "left"),
    "mobilenet_v2": (10, 20, "right"),
}


def draw_depth_chart(rows) -> Image.Image:
    """Year against depth for every network in the depth table (`cnn_depth.DepthRow`s), each
    point coloured by its ImageNet top-1 (colour bar in %), the slide's road AlexNet → VGG →
    ResNet drawn as arrows."""
    from matplotlib.figure import Figure

    from vlmlab.render import figure_to_image

    rows = [row for row in rows if row.year is not None]
    # Drawn about as large as it is shown beside the table, so its words stay readable.
    figure = Figure(figsize=(5.6, 4.6), layout="constrained")
    axes = figure.add_subplot()
    by_model = {row.model: row for row in rows}
    road = [by_model[name] for name in REVOLUTION if name in by_model]
    for start, end in zip(road, road[1:]):
        axes.annotate(
            "",
            xy=(end.year, end.depth),
            xytext=(start.year, start.depth),
            arrowprops={"arrowstyle": "-|>", "color": "0.45", "lw": 2, "shrinkA": 9, "shrinkB": 9},
        )
    top1 = [row.top1 for row in rows]
    points = axes.scatter(
        [row.year for row in rows],
        [row.depth for row in rows],
        c=top1,
        cmap="viridis",
        vmin=min(top1) - 1,
        vmax=max(top1) + 1,
        s=160,
        edgecolors="black",
        zorder=3,
    )
    for row in rows:
        name = row.title.split(" (")[0]
        dx, dy, align = _LABEL_OFFSETS.get(row.model, (10, 0, "left"))
        axes.annotate(
            f"{name}: {row.top1:.1f}%",
            (row.year, row.depth),
            xytext=(dx, dy),
            textcoords="offset points",
            fontsize=11,
            va="center",
            ha=align,
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none"},
            zorder=4,
        )
    years = [row.year for row in rows]
    axes.set_xlim(min(years) - 0.8, max(years) + 0.8)
    axes.set_xticks(sorted(set(years)))
    axes.set_ylim(-12, max(row.depth for row in rows) * 1.12)
    axes.set_xlabel("year of the paper", fontsize=12)
    axes.set_ylabel("depth (weight layers)", fontsize=12)
    axes.set_yticks(range(0, max(row.depth for row in rows) + 1, 25))
    axes.set_title("The revolution of depth", fontsize=14)
    axes.tick_params(labelsize=11)
    axes.grid(alpha=0.3)
    bar = figure.colorbar(points, ax=axes, pad=0.02)
    bar.set_label("ImageNet top-1 accuracy (%)", fontsize=12)
    bar.ax.tick_params(labelsize=11)
    return figure_to_image(figure, dpi=100)
