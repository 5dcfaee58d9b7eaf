"""Figures to keep: any picture the lab draws, saved for a lecturer's slides — a PNG at twice its
on-screen resolution with a one-line caption (what it shows, the model, the setting) written into
it, the matplotlib-drawn ones also as SVG, under a name that says what it is
(`cnn_resnet50_layer3_channel12.png`, not `image.webp`).

Figures drawn with matplotlib are redrawn at twice the resolution (`render.figure_to_image` keeps
the last few); pictures drawn with Pillow (feature-map grids, heat maps, pixel grids) are
enlarged 2× pixel for pixel, so every value stays a crisp block.
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure
from PIL import Image, PngImagePlugin

from vlmlab.cache import fingerprint
from vlmlab.errors import LabError

SCALE = 2  # a saved PNG has twice the on-screen pixels in each direction
KEEP_FIGURES = 32  # matplotlib figures kept for a redraw at 2× and as SVG (recent ones)
MAX_STEM = 120
MAX_CAPTION = 300

_kept: OrderedDict[str, tuple[Figure, int]] = OrderedDict()  # fingerprint(image) -> (figure, dpi)
_lock = threading.Lock()


@dataclass(frozen=True)
class SavedFigure:
    """One figure ready to keep: `name` is the file stem, `png` is SCALE× the picture shown."""

    name: str  # cnn_resnet50_layer3_channel12
    caption: str  # one line: what it shows — the model, the setting
    png: bytes  # the caption is in its Title and Description text chunks
    size: tuple[int, int]  # the PNG's (width, height)
    svg: bytes | None  # matplotlib figures only, with the caption as title and description

    @property
    def png_name(self) -> str:
        return f"{self.name}.png"

    @property
    def svg_name(self) -> str:
        return f"{self.name}.svg"


def file_stem(topic: str, *parts) -> str:
    """A file name (without extension) that says what a figure is: the topic, then each setting
    (None and empty ones left out), lower case, `_` between parts, only letters, digits, `.` and
    `-` inside them: ("cnn", "resnet50", "layer3", "channel12") → cnn_resnet50_layer3_channel12;
    a Hugging Face id "openai/clip-vit-base-patch32" → openai-clip-vit-base-patch32."""
    words = []
    for part in (topic, *parts):
        if part is None or part == "":
            continue
        if isinstance(part, float) and part.is_integer():
            part = int(part)
        word = re.sub(r"[^a-z0-9.]+", "-", str(part).lower()).strip("-.")
        if word:
            words.append(word)
    if not words:
        raise LabError("A figure needs a name: give at least its topic, like 'cnn'.")
    return "_".join(words)[:MAX_STEM].rstrip("_-.")


def caption(what: str, model: str | None = None, setting: str | None = None) -> str:
    """A one-line caption: 'what it shows — the model, the setting' (on one line, bounded)."""
    tail = ", ".join(str(p) for p in (model, setting) if p not in (None, ""))
    line = f"{what} — {tail}" if tail else str(what)
    line = " ".join(line.split())
    return line if len(line) <= MAX_CAPTION else line[: MAX_CAPTION - 1] + "…"


def keep_figure(image: Image.Image, figure: Figure, dpi: int) -> None:
    """Remember the matplotlib `figure` that `image` was drawn from (at `dpi`), so a saved copy
    of `image` can be redrawn sharp at 2× and as SVG. Only the last KEEP_FIGURES are kept."""
    FigureCanvasBase(figure)  # drop any raster canvas the drawing left behind
    key = fingerprint(image)
    with _lock:
        _kept[key] = (figure, dpi)
        _kept.move_to_end(key)
        while len(_kept) > KEEP_FIGURES:
            _kept.popitem(last=False)


def _picture(image) -> Image.Image:
    if isinstance(image, (bytes, bytearray, memoryview)) and len(image):  # a widget's PNG
        image = Image.open(io.BytesIO(bytes(image)))
    if isinstance(image, (str, Path)):
        image = Image.open(image)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if not isinstance(image, Image.Image):
        raise LabError("There is no figure here to save yet.")
    return image.convert("RGB")


def save_figure(image, name: str, caption_line: str, *, scale: int = SCALE) -> SavedFigure:
    """`image` (a picture the lab drew, as shown) saved at `scale`× its size as PNG, with
    `caption_line` inside; a matplotlib figure is redrawn at `scale`× its resolution and also
    given as SVG, any other picture is enlarged pixel for pixel."""
    picture = _picture(image)
    target = (picture.width * scale, picture.height * scale)
    with _lock:
        kept = _kept.get(fingerprint(picture))
        svg = None
        if kept is not None:
            figure, dpi = kept
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=dpi * scale, bbox_inches="tight",
                           facecolor="white")  # fmt: skip
            large = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
            vector = io.BytesIO()
            figure.savefig(vector, format="svg", bbox_inches="tight", facecolor="white",
                           metadata={"Title": name, "Description": caption_line})  # fmt: skip
            svg = vector.getvalue()
            FigureCanvasBase(figure)
    if kept is None:
        large = picture.resize(target, Image.Resampling.NEAREST)
    elif large.size != target:  # bbox rounding: a pixel either way
        large = large.resize(target, Image.Resampling.LANCZOS)
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", name)
    info.add_text("Description", caption_line)
    info.add_text("Software", "vlmlab")
    out = io.BytesIO()
    large.save(out, format="png", pnginfo=info, optimize=False)
    return SavedFigure(name=name, caption=caption_line, png=out.getvalue(), size=target, svg=svg)


# ---------------------------------------------------------------------------------------------
# A view's figures, named from its settings: the one saving path for both faces (the app's
# "Figures to keep" panel and each widget's "Save figures" button)


def setting_word(key: str, value) -> str | None:
    """A setting as it goes into a file name: numbers with their name (channel12), text as is."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = int(value) if float(value).is_integer() else value
        return f"{key}{number}"
    return str(value)


def setting_line(keys, values) -> str:
    """The settings `keys` of `values` as a caption's tail ("layer layer3, channel 12"); the
    model is said on its own."""
    parts = []
    for key in keys:
        value = values.get(key)
        if key == "model" or value in (None, "") or isinstance(value, bool):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def _shown(picture, what: str) -> list:
    """A picture, or each of a gallery's (picture, caption) items numbered: (picture, what)."""
    if picture is None or (isinstance(picture, (bytes, bytearray, memoryview)) and not picture):
        return []
    if isinstance(picture, (list, tuple)):
        items = [item[0] if isinstance(item, (list, tuple)) else item for item in picture]
        return [(item, f"{what} {i + 1}") for i, item in enumerate(items) if item is not None]
    return [(picture, what)]


def save_view_figures(topic: str, figures, values, folder) -> tuple[list[Path], list[str]]:
    """Save each shown picture of `figures` into `folder`: the files written and one caption
    line per figure (Markdown). `figures` holds (picture, what it shows, the settings that name
    it: keys of `values`) or, for a figure with a name of its own, a fourth item: the file
    name's first words instead of `topic` and what it shows ("featurevis" →
    featurevis_mobilenet-v2_block9_channel12.png; words apart with `_`). A picture is PIL, an array, PNG bytes or a gallery's list; None or empty
    ones (not shown yet) are left out, and a name saved once is not saved again."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    lines: list[str] = []
    seen: set[str] = set()
    for picture, what, keys, *own in figures:
        first = own[0] if own else None
        for image, label in _shown(picture, what):
            words = [setting_word(k, values.get(k)) for k in keys]
            if first is None:
                stem = file_stem(topic, *words, label)
            else:
                stem = file_stem(*first.split("_"), *words, label[len(what) :].strip() or None)
            if stem in seen:
                continue
            seen.add(stem)
            line = caption(label[:1].upper() + label[1:], values.get("model"),
                           setting_line(keys, values))  # fmt: skip
            saved = save_figure(image, stem, line)
            (folder / saved.png_name).write_bytes(saved.png)
            paths.append(folder / saved.png_name)
            names = f"`{saved.png_name}` ({saved.size[0]}×{saved.size[1]})"
            if saved.svg is not None:
                (folder / saved.svg_name).write_bytes(saved.svg)
                paths.append(folder / saved.svg_name)
                names += f", `{saved.svg_name}`"
            lines.append(f"- {names}: {line}")
    if not paths:
        raise LabError("There are no figures here yet: show something first.")
    return paths, lines
