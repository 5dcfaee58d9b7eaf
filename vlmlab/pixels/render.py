"""Drawing images as numbers: magnified grids with each value written on its cell, channel
planes side by side with titles. Pure numpy and Pillow, fast enough for every slider move.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vlmlab.render import current_style
from vlmlab.pixels import (
    ColorSpaceView,
    PixelRegion,
    TensorFacts,
    channel_planes,
    rgb_pixels,
    shrink,
)

PREVIEW_SIDE = 640  # the photo picker's longest side
MIN_BOX = 16  # the region's outline is at least this many preview pixels wide
PLANE_SIDE = 280  # each channel plane's longest side
TITLE_HEIGHT = 22
GAP = 8
WHITE = (255, 255, 255)
HIGHLIGHT = (255, 200, 0)


@functools.lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (shipped inside matplotlib; it has ×, −, … and ′) at `size` pixels."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:  # pragma: no cover - a matplotlib without its fonts
        return ImageFont.load_default(size=size)


def tensor_lines(facts: TensorFacts) -> list[list[tuple[str, bool]]]:
    """The tensor facts as lines of (text, bold) runs, for Markdown or HTML."""
    height, width, channels = facts.height, facts.width, facts.channels
    pixel = facts.pixel
    r, g, b = pixel.rgb
    floats = ", ".join(f"{f:.3f}" for f in pixel.floats)
    return [
        [("Stored (numpy, PIL): ", False), (f"(H, W, C) = ({height}, {width}, {channels})", True),
         (", dtype ", False), ("uint8", True),
         (f": whole numbers 0–255, {height * width * channels:,} of them.", False)],
        [("As a PyTorch tensor (torchvision's ToTensor): ", False),
         (f"(C, H, W) = ({channels}, {height}, {width})", True), (", dtype ", False),
         ("float32", True), (", values 0–1.", False)],
        [(f"Pixel (row {pixel.row}, column {pixel.col}): uint8 ", False),
         (f"[{r}, {g}, {b}]", True), (" → float ", False), (f"[{floats}]", True),
         (" (÷ 255).", False)],
        [(f"Its gray value (Pillow 'L'): round(0.299·{r} + 0.587·{g} + 0.114·{b}) = ", False),
         (f"{pixel.gray}", True), (".", False)],
    ]  # fmt: skip


def describe_tensor(facts: TensorFacts) -> str:
    """The tensor facts as a Markdown list."""
    return "\n".join(
        "- " + "".join(f"**{text}**" if bold else text for text, bold in line)
        for line in tensor_lines(facts)
    )


def tensor_facts_html(facts: TensorFacts) -> str:
    """The tensor facts as an HTML list."""
    items = (
        "".join(f"<b>{html.escape(t)}</b>" if bold else html.escape(t) for t, bold in line)
        for line in tensor_lines(facts)
    )
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def format_number(value: float) -> str:
    """A short label for a cell: whole numbers as they are, others to about 3 digits."""
    value = float(value)
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    magnitude = abs(value)
    digits = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2 if magnitude >= 0.1 else 3
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return "0" if text in ("-0", "") else text


def draw_number_grid(
    values: np.ndarray,
    fill: np.ndarray | None = None,
    *,
    cell: int = 34,
    highlight: tuple[int, int, int, int] | None = None,
    faded: np.ndarray | None = None,
) -> Image.Image:
    """A magnified grid: each cell coloured (`fill`, (h, w, 3) uint8; gray from the values if
    None) with its value written on it. `highlight` = (top, left, bottom, right) outlines cells;
    `faded` (h, w) bool greys out cells (e.g. padding)."""
    values = np.asarray(values, dtype=np.float64)
    h, w = values.shape
    if fill is None:
        level = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        fill = np.repeat(level[..., None], 3, axis=2)
    fill = np.array(fill, dtype=np.uint8)
    faded = np.zeros((h, w), bool) if faded is None else np.asarray(faded, bool)
    fill[faded] = 232
    canvas = np.repeat(np.repeat(fill, cell, axis=0), cell, axis=1)  # (h·cell, w·cell, 3)
    canvas[::cell, :] = 128  # grid lines
    canvas[:, ::cell] = 128
    image = Image.fromarray(np.ascontiguousarray(canvas))
    draw = ImageDraw.Draw(image)
    luma = fill.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    scaled = current_style().size(cell * 2 // 5)  # larger in the projector view, as cells allow
    for i in range(h):
        for j in range(w):
            text = format_number(values[i, j])
            size = min(scaled, cell * 3 // 5)
            while size > 7 and font(size).getlength(text) > cell - 4:
                size -= 1
            ink = (130, 130, 130) if faded[i, j] else (0, 0, 0) if luma[i, j] > 140 else WHITE
            draw.text(
                ((j + 0.5) * cell, (i + 0.5) * cell), text, fill=ink, font=font(size), anchor="mm"
            )
    if faded.any() and not faded.all():  # outline the real cells
        rows, cols = np.nonzero(~faded)
        box = (
            cols.min() * cell,
            rows.min() * cell,
            (cols.max() + 1) * cell,
            (rows.max() + 1) * cell,
        )
        draw.rectangle(box, outline=(40, 40, 40), width=2)
    if highlight is not None:
        top, left, bottom, right = highlight
        draw.rectangle(
            (left * cell, top * cell, right * cell, bottom * cell), outline=HIGHLIGHT, width=3
        )
    return image


def titled_row(
    tiles: Sequence[tuple[Image.Image, str]], *, columns: int | None = None
) -> Image.Image:
    """Images side by side (wrapping after `columns`), each under its title, on white."""
    columns = columns or len(tiles)
    rows = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    style = current_style()  # larger titles in the projector view
    size, title_height = style.size(14), style.size(TITLE_HEIGHT)
    width = max(sum(t.width for t, _ in row) + GAP * (len(row) - 1) for row in rows)
    heights = [max(t.height for t, _ in row) + title_height for row in rows]
    canvas = Image.new("RGB", (width, sum(heights) + GAP * (len(rows) - 1)), WHITE)
    draw = ImageDraw.Draw(canvas)
    y = 0
    for row, height in zip(rows, heights):
        x = 0
        for tile, title in row:
            draw.text((x + 2, y + 3), title, fill=(0, 0, 0), font=font(size))
            canvas.paste(tile.convert("RGB"), (x, y + title_height))
            x += tile.width + GAP
        y += height + GAP
    return canvas


def preview_scale(image_size: tuple[int, int], max_side: int = PREVIEW_SIDE) -> float:
    """Photo pixels per preview pixel (≥ 1): multiply a click on the preview by it."""
    return max(1.0, max(image_size) / max_side)


def draw_region_box(image, region: PixelRegion, *, max_side: int = PREVIEW_SIDE) -> Image.Image:
    """The photo, scaled to fit `max_side`, with the picked region outlined."""
    photo = Image.fromarray(rgb_pixels(image))
    scale = preview_scale(photo.size, max_side)
    if scale > 1:
        # max(1, …): a 2048×1 strip still has one row of preview pixels.
        photo = photo.resize(
            (max(1, round(photo.width / scale)), max(1, round(photo.height / scale)))
        )
    draw = ImageDraw.Draw(photo)
    h, w = region.size
    box = [
        region.left / scale,
        region.top / scale,
        (region.left + w) / scale,
        (region.top + h) / scale,
    ]
    # Seen from the back of a hall even on a big photo: at least MIN_BOX preview pixels wide,
    # a thick yellow line inside a black rim, centred on the region.
    for axis in (0, 1):
        grow = max(0.0, MIN_BOX - (box[axis + 2] - box[axis])) / 2
        box[axis], box[axis + 2] = box[axis] - grow, box[axis + 2] + grow
    line = max(3, round(max(photo.size) / 160))
    rim = [box[0] - line - 1, box[1] - line - 1, box[2] + line, box[3] + line]
    draw.rectangle(rim, outline=(0, 0, 0), width=line + 2)
    draw.rectangle([box[0] - line, box[1] - line, box[2] + line - 1, box[3] + line - 1],
                   outline=(255, 230, 0), width=line)
    return photo


def draw_region_grids(
    region: PixelRegion, *, mark: tuple[int, int] | None = None, cell: int | None = None
) -> Image.Image:
    """The region magnified four times over: grayscale, then R, G and B, every value written.
    `mark` = (row, col) in the photo outlines that pixel in each grid."""
    h, w = region.size
    cell = cell or max(26, min(48, 512 // max(h, w)))
    box = None
    if mark is not None:
        r, c = mark[0] - region.top, mark[1] - region.left
        box = (r, c, r + 1, c + 1) if 0 <= r < h and 0 <= c < w else None
    zeros = np.zeros_like(region.gray)
    tiles = [(draw_number_grid(region.gray, cell=cell, highlight=box), "grayscale (Pillow 'L')")]
    for c, name in enumerate(("R", "G", "B")):
        level = region.rgb[..., c]
        tint = np.stack([level if k == c else zeros for k in range(3)], axis=-1)
        grid = draw_number_grid(level, tint, cell=cell, highlight=box)
        tiles.append((grid, f"{name} (channel {c})"))
    return titled_row(tiles, columns=2)


def color_table_html(values: dict[str, tuple[tuple[str, float], ...]]) -> str:
    """One colour in every colour space (from `pixel_in_color_spaces`), as a small HTML table."""
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:10px'>{space}</th>"
        + "".join(
            f"<td style='padding:0 10px 0 0'>{name} = {format_number(v)}</td>" for name, v in pairs
        )
        + "</tr>"
        for space, pairs in values.items()
    )
    return f"<table style='font:13px sans-serif'>{rows}</table>"


def _plane_image(values: np.ndarray, low: float, high: float, side: int) -> Image.Image:
    scaled = (np.asarray(values, np.float32) - low) * (255.0 / max(high - low, 1e-12))
    plane = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))
    plane.thumbnail((side, side))
    return plane


def draw_channel_planes(image, *, side: int = PLANE_SIDE) -> Image.Image:
    """The C×H×W tensor: its three planes side by side, each a grayscale matrix of 0–255."""
    planes = channel_planes(shrink(image, side))  # (3, h, w), h and w ≤ side
    return titled_row(
        [
            (_plane_image(p, 0, 255, side), f"[{c}] {n}")
            for c, (p, n) in enumerate(zip(planes, "RGB"))
        ]
    )


def draw_color_planes(view: ColorSpaceView, *, side: int = PLANE_SIDE) -> Image.Image:
    """Each channel of a colour space as its own plane, black = low end, white = high end."""
    return titled_row(
        [
            (
                _plane_image(p.values, p.low, p.high, side),
                f"{p.name} ({p.meaning})  {format_number(p.low)} … {format_number(p.high)}",
            )
            for p in view.planes
        ],
        columns=4,
    )
