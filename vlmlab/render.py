"""Drawing, kept apart from computing: results in, images or figures out, for both faces.

Figures are `matplotlib.figure.Figure` objects (never pyplot state) and are closed by the
helpers that turn them into images.

One style switch, `figure_style(PROJECTOR)`, makes every figure drawn inside it carry larger text
(titles, tick labels, annotations, colour-bar words) for a lecture hall; it is a context variable,
so each visitor's (or thread's) choice stays theirs.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import html
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

# ---------------------------------------------------------------------------------------------
# The style switch: how large figure text is drawn


@dataclass(frozen=True)
class FigureStyle:
    """How figures are drawn: `text_scale` multiplies every text size (1 = the normal view)."""

    name: str = "normal"
    text_scale: float = 1.0

    def size(self, points: float) -> int:
        """A text size (points or pixels) in this style, rounded to a whole number."""
        return max(1, round(points * self.text_scale))


NORMAL = FigureStyle()
PROJECTOR = FigureStyle("projector", 1.6)  # a hall at 1280×720: text read from the back row

_style: contextvars.ContextVar[FigureStyle | None] = contextvars.ContextVar(
    "vlmlab_figure_style", default=None
)
_style_source: Callable[[], FigureStyle | None] | None = None


def current_style() -> FigureStyle:
    """The style figures are drawn in here and now: the innermost `figure_style`, else what the
    style source says (the web app: the visitor whose request is being answered), else NORMAL."""
    style = _style.get()
    if style is None and _style_source is not None:
        style = _style_source()
    return style or NORMAL


def use_style_source(source: Callable[[], FigureStyle | None] | None) -> None:
    """Let `source()` choose the style where no `figure_style` block does (None: stop). The web
    app passes one that reads the projector switch of the visitor being answered."""
    global _style_source
    _style_source = source


@contextlib.contextmanager
def figure_style(style: FigureStyle | bool | None) -> Iterator[FigureStyle]:
    """Draw the figures made inside in `style` (True: PROJECTOR, False/None: NORMAL).

    A context variable, not matplotlib's global rcParams: visitors drawn at once in different
    threads each keep their own choice."""
    if not isinstance(style, FigureStyle):
        style = PROJECTOR if style else NORMAL
    token = _style.set(style)
    try:
        yield style
    finally:
        _style.reset(token)


def scale_figure_text(figure: Figure, scale: float) -> None:
    """Multiply the size of every text in `figure` (titles, tick labels, axis labels, colour-bar
    labels, annotations, legends) by `scale`, in place. Tick labels made later (at draw time)
    follow through each axis's tick settings."""
    if scale == 1:
        return
    ticks: set[int] = set()
    for axes in figure.axes:
        for name, axis in (("x", axes.xaxis), ("y", axes.yaxis)):
            labels = axis.get_ticklabels(which="both")
            if labels:
                size = labels[0].get_fontsize() * scale
                axes.tick_params(axis=name, which="both", labelsize=size)
            for tick in (*axis.get_major_ticks(), *axis.get_minor_ticks()):
                ticks.update((id(tick.label1), id(tick.label2)))
    for text in figure.findobj(Text):
        if id(text) not in ticks:
            text.set_fontsize(text.get_fontsize() * scale)
            text.set_wrap(True)  # a long title breaks into lines inside the figure


def figure_to_image(figure: Figure, *, dpi: int = 100) -> Image.Image:
    """Render a figure, in the current style, to an RGB image on an opaque white ground (legible
    on a dark page too). The figure is kept a short while for `vlmlab.export`, which redraws it
    at twice the resolution and as SVG; nothing else holds it."""
    style = current_style()
    scale_figure_text(figure, style.text_scale)
    figure.set_facecolor("white")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB")
    from vlmlab import export  # export imports this module

    export.keep_figure(image, figure, dpi)
    return image


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
    size = current_style().size(13)
    tiles = [
        np.vstack([_label_strip(label, picture.width, size), np.asarray(picture.convert("RGB"))])
        for picture, label in zip(pictures, labels, strict=True)
    ]
    return tile(tiles, columns=max(1, min(columns, len(tiles))), gap=gap)


@functools.lru_cache(maxsize=256)
def _label_strip(text: str, width: int, size: int = 13) -> np.ndarray:
    from PIL import ImageDraw

    face = font(size)
    while text and face.getlength(text) > width - 4:  # cut to fit, with an ellipsis
        text = text[:-2] + "…" if len(text) > 2 else ""
    strip = Image.new("RGB", (width, size + 5), "white")
    ImageDraw.Draw(strip).text((2, 1), text, font=face, fill=(0, 0, 0))
    pixels = np.asarray(strip)
    pixels.setflags(write=False)
    return pixels


# ---------------------------------------------------------------------------------------------
# Colour bars: what a colour means, in words and numbers, under a picture (drawn with Pillow, so
# switching a channel or a head stays cheap)


@functools.lru_cache(maxsize=16)
def font(size: int):
    """Pillow's built-in scalable font (DejaVu Sans) at `size` pixels."""
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def bar_font_size(width: int) -> int:
    """Text size for a bar under a picture `width` pixels wide: readable once the browser fits
    the picture to its panel, from the back of a hall (larger in the projector style)."""
    style = current_style()
    return min(style.size(int(np.clip(round(width / 24), 12, 22))), max(12, width // 12))


def colour_bar_levels(
    width: int,
    steps: int,
    ticks: Sequence[tuple[float, str]],
    label: str,
    *,
    ink: int,
    paper: int,
    size: int | None = None,
) -> np.ndarray:
    """A colour bar as palette levels, (h, width) uint8: the bar runs through levels 0…steps−1
    from left to right; `ticks` are (position 0–1, text) under it, `label` (the quantity and its
    unit) under them; text is level `ink` on level `paper` (crisp, no in-between levels)."""
    size = size or bar_font_size(width)
    margin = max(4, size // 2)
    label_size = size
    while label_size > 9 and font(label_size).getlength(label) > width - 2 * margin:
        label_size -= 1  # a long label in a narrow picture: smaller, but whole
    bar_height = max(8, round(size * 0.9))
    tick_row = margin + bar_height + 4
    label_row = tick_row + size + 6
    height = label_row + size + margin
    levels = np.full((height, width), paper, np.uint8)
    inner = width - 2 * margin
    ramp = np.linspace(0, steps - 1, max(inner, 1)).round().astype(np.uint8)  # ends included
    levels[margin : margin + bar_height, margin : margin + inner] = ramp
    levels[margin - 1, margin - 1 : margin + inner + 1] = ink  # a thin frame round the bar
    levels[margin + bar_height, margin - 1 : margin + inner + 1] = ink
    levels[margin - 1 : margin + bar_height + 1, margin - 1] = ink
    levels[margin - 1 : margin + bar_height + 1, margin + inner] = ink
    for position, words in ticks:
        x = margin + round(float(np.clip(position, 0, 1)) * (inner - 1))
        levels[margin + bar_height : margin + bar_height + 4, x] = ink
        align = "left" if position <= 0.02 else "right" if position >= 0.98 else "centre"
        _stamp(levels, _text_pixels(words, size), x, tick_row, align, ink)
    _stamp(levels, _text_pixels(label, label_size), width // 2, label_row, "centre", ink)
    return levels


@functools.lru_cache(maxsize=512)
def _text_pixels(words: str, size: int) -> np.ndarray:
    """`words` rendered once as a boolean mask (the same ticks and labels come back often)."""
    from PIL import ImageDraw

    text = font(size)
    left, top, right, bottom = text.getbbox(words)
    # Drawn in gray levels with room to spare, then thresholded: a 1-bit canvas drops the last
    # glyphs of a long label.
    canvas = Image.new("L", (max(1, right + size), max(1, bottom)), 0)
    ImageDraw.Draw(canvas).text((0, 0), words, font=text, fill=255)
    mask = np.asarray(canvas) > 127
    inked = np.flatnonzero(mask.any(axis=0))
    mask = mask[:, : int(inked[-1]) + 1 if inked.size else 1]
    mask.setflags(write=False)
    return mask


def _stamp(levels: np.ndarray, mask: np.ndarray, x: int, y: int, align: str, ink: int) -> None:
    """Write `mask` into `levels` as `ink`, its top at `y`, aligned on `x` (clipped to fit)."""
    h, w = mask.shape
    left = x if align == "left" else x - w if align == "right" else x - w // 2
    left = int(np.clip(left, 0, max(0, levels.shape[1] - w)))
    region = levels[y : y + h, left : left + w]
    region[mask[: region.shape[0], : region.shape[1]]] = ink


def colour_bar(
    width: int, cmap: str, ticks: Sequence[tuple[float, str]], label: str, *, size=None
) -> Image.Image:
    """A colour bar through matplotlib's `cmap`, black text on white, as an RGB image."""
    table = _colour_table(cmap)
    steps = min(len(table), 254)
    colours = table[np.linspace(0, len(table) - 1, steps).round().astype(int)]
    lookup = np.vstack([colours, np.zeros((256 - steps, 3), np.uint8)])
    lookup[255] = 255
    levels = colour_bar_levels(width, steps, ticks, label, ink=254, paper=255, size=size)
    return Image.fromarray(lookup[levels])


def with_colour_bar(
    image: Image.Image, cmap: str, ticks: Sequence[tuple[float, str]], label: str
) -> Image.Image:
    """`image` (RGB) with a colour bar saying what its colours mean under it."""
    bar = colour_bar(image.width, cmap, ticks, label)
    out = Image.new("RGB", (image.width, image.height + bar.height), "white")
    out.paste(image.convert("RGB"), (0, 0))
    out.paste(bar, (0, image.height))
    return out


def value_ticks(lo: float, hi: float, count: int = 3) -> list[tuple[float, str]]:
    """Evenly spaced ticks from `lo` to `hi`, written with 3 significant digits."""
    if not hi > lo:
        return [(0.0, f"{lo:.3g}")]
    return [(i / (count - 1), f"{lo + (hi - lo) * i / (count - 1):.3g}") for i in range(count)]


def png_bytes(image: Image.Image) -> bytes:
    """A picture as PNG bytes (an ipywidgets.Image's value, a download)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def error_html(sentence: object) -> str:
    """A user's one-sentence error as HTML, in the error colour (escaped: it may quote what the
    user typed)."""
    return f"<p style='color:#b00020'>⚠️ {html.escape(str(sentence))}</p>"
