"""Drawing a ViT's insides: the numbered patch grid, one patch's way to a token, the position-
embedding similarity figure (ViT paper, Fig. 7) and attention heat maps over the photo.

Heat maps are drawn with numpy and Pillow only (switching layer, head or query must stay cheap);
the two explanatory figures use matplotlib `Figure`s.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from vlmlab.errors import LabError
from vlmlab.render import (
    colorize,
    colour_bar,
    current_style,
    figure_to_image,
    tile,
    with_colour_bar,
)
from vlmlab.vit import (
    CLS,
    MEAN,
    AttentionMap,
    ViTInspection,
    attention_map,
    check_patch,
    describe_attention,
    head_maps,
    patch_vector,
    position_similarity,
    rollout_map,
)

MIN_CELL = 36  # a patch is drawn at least this many pixels wide, so its number fits
MIN_SIDE = 448  # and the whole photo at least this wide
TILE_SIDE = 160  # small multiples: each head's map at least this wide
HEAT_CMAP = "inferno"
HEAT_ALPHA = 0.6
HIGHLIGHT = (255, 214, 0)
HIGHLIGHT_MPL = tuple(v / 255 for v in HIGHLIGHT)


def display_scale(inspection: ViTInspection) -> int:
    """The whole-number zoom at which the patch grid and heat maps are drawn."""
    side = max(inspection.image.size)
    return max(1, math.ceil(max(MIN_CELL / inspection.patch_size, MIN_SIDE / side)))


def _zoomed(inspection: ViTInspection, scale: int) -> Image.Image:
    # Nearest neighbour: every pixel the model sees stays a visible square.
    w, h = inspection.image.size
    return inspection.image.resize((w * scale, h * scale), Image.Resampling.NEAREST)


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _outline(draw: ImageDraw.ImageDraw, box, width: int) -> None:
    """A yellow frame with a dark rim, visible on any photo."""
    x0, y0, x1, y1 = box
    draw.rectangle((x0 - 1, y0 - 1, x1 + 1, y1 + 1), outline=(0, 0, 0), width=width + 2)
    draw.rectangle(box, outline=HIGHLIGHT, width=width)


def _cell_box(inspection: ViTInspection, patch: int, cell: int) -> tuple[int, int, int, int]:
    row, col = divmod(patch - 1, inspection.grid[1])
    return col * cell, row * cell, (col + 1) * cell - 1, (row + 1) * cell - 1


# ---------------------------------------------------------------------------------------------
# Patches


def draw_patch_grid(inspection: ViTInspection, selected=None) -> Image.Image:
    """The photo as the model sees it, cut into its patch grid, patches numbered 1…N."""
    selected = None if selected is None else check_patch(inspection, selected)
    scale = display_scale(inspection)
    cell = inspection.patch_size * scale
    rows, cols = inspection.grid
    base = _zoomed(inspection, scale).convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for r in range(rows + 1):
        draw.line((0, r * cell, cols * cell, r * cell), fill=(255, 255, 255, 150), width=1)
    for c in range(cols + 1):
        draw.line((c * cell, 0, c * cell, rows * cell), fill=(255, 255, 255, 150), width=1)
    # Larger in the projector view, while the largest number still fits in its patch.
    size = max(8, min(current_style().size(min(16, cell // 3)), cell // 2))
    while size > 8 and _font(size).getlength(str(inspection.num_patches)) > cell - 4:
        size -= 1
    font = _font(size)
    for k in range(inspection.num_patches):
        r, c = divmod(k, cols)
        draw.text(
            (c * cell + 2, r * cell + 1),
            str(k + 1),
            font=font,
            fill=(255, 255, 255, 235),
            stroke_width=2,
            stroke_fill=(0, 0, 0, 200),
        )
    picture = Image.alpha_composite(base, layer).convert("RGB")
    if selected is not None:
        _outline(ImageDraw.Draw(picture), _cell_box(inspection, selected, cell), 3)
    return picture


def patch_at(inspection: ViTInspection, x: float, y: float) -> int:
    """The patch number under pixel (x, y) of `draw_patch_grid`'s picture (a click)."""
    cell = inspection.patch_size * display_scale(inspection)
    rows, cols = inspection.grid
    try:
        row, col = int(y) // cell, int(x) // cell
    except (TypeError, ValueError):
        raise LabError("Click on the photo to pick a patch.") from None
    if not (0 <= row < rows and 0 <= col < cols):
        raise LabError("That point is outside the patch grid; click on the photo to pick a patch.")
    return row * cols + col + 1


def draw_patch_steps(inspection: ViTInspection, patch) -> Image.Image:
    """Patch k: its C×p×p pixels → one C·p²-vector → its D-dimensional projection."""
    k = check_patch(inspection, patch) - 1  # 0-based patch index
    vector = patch_vector(inspection, patch)  # (C·p·p,)
    pixels = inspection.patch_pixels[k]  # (C, p, p)
    embedding = inspection.patch_embeddings[k]  # (D,)
    c, p, d = inspection.channels, inspection.patch_size, inspection.hidden_size
    row, col = divmod(k, inspection.grid[1])

    fig = Figure(figsize=(9.6, 5.4), layout="constrained")
    grid = fig.add_gridspec(3, c + 1, height_ratios=[3.2, 1, 1])
    crop = inspection.image.crop((col * p, row * p, (col + 1) * p, (row + 1) * p))
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(np.asarray(crop), interpolation="nearest")
    ax.set_title(f"patch {k + 1} (row {row + 1}, column {col + 1})", fontsize=10)
    ax.set_axis_off()
    limit = float(np.abs(pixels).max()) or 1.0
    names = ("R", "G", "B") if c == 3 else tuple(f"channel {i + 1}" for i in range(c))
    for i in range(c):
        ax = fig.add_subplot(grid[0, i + 1])
        shown = ax.imshow(pixels[i], cmap="gray", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(f"{names[i]}: {p}×{p} numbers", fontsize=10)
        ax.set_axis_off()
    fig.colorbar(shown, ax=fig.axes[1 : c + 1], shrink=0.8, label="model input (normalised)")

    ax = fig.add_subplot(grid[1, :])
    ax.imshow(
        vector[None, :],
        aspect="auto",
        cmap="gray",
        vmin=-limit,
        vmax=limit,
        interpolation="nearest",
    )
    for i in range(1, c):
        ax.axvline(i * p * p - 0.5, color=HIGHLIGHT_MPL, linewidth=1.5)
    ax.set_yticks([])
    ax.set_title(
        f"flatten: {c}×{p}×{p} → a vector of {c * p * p:,} numbers ({', then '.join(names)})",
        fontsize=10,
        loc="left",
    )
    ax = fig.add_subplot(grid[2, :])
    span = float(np.abs(embedding).max()) or 1.0
    ax.imshow(
        embedding[None, :],
        aspect="auto",
        cmap="coolwarm",
        vmin=-span,
        vmax=span,
        interpolation="nearest",
    )
    ax.set_yticks([])
    ax.set_title(
        f"linear projection: W ({d}×{c * p * p:,}) · vector + b → a token of D = {d} numbers "
        "(before its position embedding is added)",
        fontsize=10,
        loc="left",
    )
    return figure_to_image(fig)


# ---------------------------------------------------------------------------------------------
# Position embeddings


def draw_position_similarity(inspection: ViTInspection) -> Image.Image:
    """A grid of small grids: tile (r, c) shows how similar position (r, c)'s embedding is to
    every other position's (cosine), as in the ViT paper's Figure 7."""
    from matplotlib import colormaps

    similarity = position_similarity(inspection)  # (rows, cols, rows, cols)
    rows, cols = inspection.grid
    mosaic = np.full((rows * (rows + 1) - 1, cols * (cols + 1) - 1), np.nan, np.float32)
    for r in range(rows):
        for c in range(cols):
            mosaic[
                r * (rows + 1) : r * (rows + 1) + rows, c * (cols + 1) : c * (cols + 1) + cols
            ] = similarity[r, c]
    # Whole device pixels per cell keep the small grids crisp.
    zoom = max(1, 520 // max(mosaic.shape))
    width, height = mosaic.shape[1] * zoom, mosaic.shape[0] * zoom
    left, bottom, right, top, dpi = 70, 60, 110, 40, 100
    fig = Figure(figsize=((left + width + right) / dpi, (bottom + height + top) / dpi), dpi=dpi)
    total_w, total_h = left + width + right, bottom + height + top
    ax = fig.add_axes((left / total_w, bottom / total_h, width / total_w, height / total_h))
    cmap = colormaps["viridis"].with_extremes(bad="white")
    shown = ax.imshow(mosaic, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    step = max(1, math.ceil(max(rows, cols) / 14))
    ax.set_xticks(
        [c * (cols + 1) + (cols - 1) / 2 for c in range(0, cols, step)],
        [str(c + 1) for c in range(0, cols, step)],
    )
    ax.set_yticks(
        [r * (rows + 1) + (rows - 1) / 2 for r in range(0, rows, step)],
        [str(r + 1) for r in range(0, rows, step)],
    )
    ax.tick_params(length=0, labelsize=8)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel("input patch column")
    ax.set_ylabel("input patch row")
    ax.set_title("Position embedding similarity", fontsize=11)
    bar = fig.add_axes(
        ((left + width + 20) / total_w, bottom / total_h, 14 / total_w, height / total_h)
    )
    fig.colorbar(shown, cax=bar, label="cosine similarity")
    return figure_to_image(fig, dpi=dpi)


# ---------------------------------------------------------------------------------------------
# Attention


def _heat(view: AttentionMap) -> np.ndarray:
    """Colours for a map, scaled from 0 to its own maximum: (rows, cols, 3) uint8."""
    top = float(view.weights.max())
    return colorize(view.weights, HEAT_CMAP, vmin=0.0, vmax=top if top > 0 else 1.0)


def draw_attention(
    inspection: ViTInspection,
    view: AttentionMap,
    *,
    scale: int | None = None,
    zoomed: Image.Image | None = None,
) -> Image.Image:
    """The map as a heat map over the photo, one block per patch; the query patch is framed.

    `zoomed` is the photo already drawn at `scale` (small multiples share one).
    """
    scale = display_scale(inspection) if scale is None else scale
    cell = inspection.patch_size * scale
    rows, cols = inspection.grid
    picture = _zoomed(inspection, scale) if zoomed is None else zoomed.copy()
    area = picture.crop((0, 0, cols * cell, rows * cell))
    colours = Image.fromarray(_heat(view)).resize(area.size, Image.Resampling.NEAREST)
    picture.paste(Image.blend(area, colours, HEAT_ALPHA), (0, 0))
    draw = ImageDraw.Draw(picture)
    if view.query_token >= inspection.num_special:
        patch = view.query_token - inspection.num_special + 1
        _outline(draw, _cell_box(inspection, patch, cell), max(1, min(3, scale)))
    return picture


def draw_head_maps(inspection: ViTInspection, views: Sequence[AttentionMap]) -> Image.Image:
    """Small multiples: one heat map per head (each scaled to its own maximum), labelled."""
    scale = max(1, math.ceil(TILE_SIDE / max(inspection.image.size)))
    zoomed = _zoomed(inspection, scale)
    size = current_style().size(13)  # the heads' labels, larger in the projector view
    tiles = []
    for view in views:
        picture = draw_attention(inspection, view, scale=scale, zoomed=zoomed)
        label = view.source.replace(f"mean of {inspection.num_heads} heads", "mean")
        tiles.append(np.vstack([_label(label, picture.width, size), np.asarray(picture)]))
    n = len(tiles)
    columns = math.ceil(n / math.ceil(n / 7)) if n else 1
    return tile(tiles, columns=columns, gap=4)


@functools.lru_cache(maxsize=64)
def _label(text: str, width: int, size: int = 13) -> np.ndarray:
    """A white strip with `text` on it, as pixels (the same few labels are drawn again and again)."""
    strip = Image.new("RGB", (width, size + 5), "white")
    ImageDraw.Draw(strip).text((2, 1), text, font=_font(size), fill=(0, 0, 0))
    pixels = np.asarray(strip)
    pixels.setflags(write=False)
    return pixels


@dataclass(frozen=True)
class AttentionViews:
    """What the attention panel shows for one (layer, head, query) choice."""

    heat_map: Image.Image  # the chosen head (or the mean) over the photo
    heads: Image.Image  # every head of the layer, small multiples
    rollout: Image.Image  # attention rollout through all layers
    text: str


def draw_attention_views(inspection: ViTInspection, layer, head=MEAN, query=CLS) -> AttentionViews:
    """All attention views for one choice; checks layer, head and query, never runs the model."""
    view = attention_map(inspection, layer, head, query)
    rollout = rollout_map(inspection, query)
    t = inspection.num_tokens
    text = (
        f"{describe_attention(inspection, view)} "
        f"With rollout: {describe_attention(inspection, rollout)} "
        f"Each row of the {t}×{t} attention matrix sums to 1."
    )
    heads = draw_head_maps(inspection, head_maps(inspection, layer, query))
    return AttentionViews(
        heat_map=with_attention_bar(draw_attention(inspection, view), view),
        heads=_with_bar_below(heads, colour_bar(
            heads.width, HEAT_CMAP, [(0.0, "0"), (1.0, "the head's maximum")],
            "attention weight, each head on its own scale",
        )),
        rollout=with_attention_bar(draw_attention(inspection, rollout), rollout),
        text=text,
    )


def with_attention_bar(picture: Image.Image, view: AttentionMap) -> Image.Image:
    """A heat map over the photo with its colour bar: attention in %, from 0 to the map's top."""
    top = float(view.weights.max()) * 100
    ticks = [(0.0, "0%"), (0.5, f"{top / 2:.2g}%"), (1.0, f"{top:.2g}%")] if top > 0 else [(0.0, "0%")]
    return with_colour_bar(picture, HEAT_CMAP, ticks, "attention weight (share of the query's attention)")


def _with_bar_below(picture: Image.Image, bar: Image.Image) -> Image.Image:
    out = Image.new("RGB", (max(picture.width, bar.width), picture.height + bar.height), "white")
    out.paste(picture, (0, 0))
    out.paste(bar, (0, picture.height))
    return out
