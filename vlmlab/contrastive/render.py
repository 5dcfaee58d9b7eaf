"""Drawing a tiny CLIP as it learns: the batch's N×N matrix with its images down one side and its
captions along the other (CLIP paper, Fig. 1), the loss and temperature, the shared embedding
space in 2-D, and zero-shot on the held-out combinations.

Everything is drawn with numpy and Pillow, not matplotlib: the views are redrawn every few steps
while a run trains, and drawing must stay a small fraction of training (bench/contrastive.py).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vlmlab.contrastive import COLOURS, Snapshot, false_negatives
from vlmlab.render import colorize, current_style

MATRIX_PAIRS = 16  # the matrix shows at most this many pairs of the batch
CELL = 30  # pixels per matrix cell (and thumbnail)
CAPTION_SPACE = 235  # pixels above the matrix for the captions
TRUE_PAIR = (40, 200, 90)
FALSE_NEGATIVE = (255, 150, 0)
PLANE_PAIRS = 32  # pairs joined in the embedding plane
TOP_K = 5

REAL_CLIP = (
    "The real CLIP did the same with 400 million image–text pairs from the web, a ViT or ResNet "
    "image encoder and a 12-layer transformer text encoder, batches of 32,768 (so every image "
    "is told apart from 32,767 captions at once), for 32 epochs on hundreds of GPUs. This one: "
    "a few hundred batches of synthetic shapes, a ~100k-parameter CNN and a bag of words, on a CPU."
)
FALSE_NEGATIVE_NOTE = (
    "**False negatives** (orange): two images in the batch share a caption word for word, so the "
    "loss counts the pair as wrong although it is right. The model cannot put both images first "
    "for that caption, so the loss never reaches zero; with web data this happens all the time."
)


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
    # matplotlib's DejaVu Sans has τ, ● and ■; Pillow's default font has not.
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return ImageFont.truetype(str(path), size) if path.exists() else ImageFont.load_default(size)


@functools.lru_cache(maxsize=2048)
def _stamp(text: str, size: int) -> Image.Image:
    """`text` as a mask ("L", white on black), rendered once: the matrix is redrawn every few
    steps with the same few hundred strings, and rendering glyphs is most of its cost."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    mask = Image.new("L", (max(1, right), max(1, bottom)), 0)
    ImageDraw.Draw(mask).text((0, 0), text, fill=255, font=font)
    return mask


def _sizes(*points: int) -> list[int]:
    """Text sizes and the margins that hold them, in the current style (larger in the projector
    view: the charts keep their size, so their text reads larger)."""
    style = current_style()
    return [style.size(p) for p in points]


def _fitted(text: str, size: int, width: float) -> ImageFont.FreeTypeFont:
    """The font at `size`, smaller (not below 9) until `text` fits in `width` pixels."""
    while size > 9 and _font(size).getlength(text) > width:
        size -= 1
    return _font(size)


def _put(canvas: Image.Image, xy, text: str, size: int, ink, anchor: str = "lt") -> None:
    """Stamp `text` onto `canvas` at `xy`; anchor "lt" (left, top), "mm" (centre), "lm"."""
    mask = _stamp(text, size)
    x, y = xy
    if anchor[0] == "m":
        x -= mask.width / 2
    if anchor[1] == "m":
        y -= mask.height / 2
    canvas.paste(ink, (round(x), round(y)), mask)


def matrix_indices(snapshot: Snapshot, show: int = MATRIX_PAIRS) -> list[int]:
    """The batch pairs the matrix shows: the first `show`, swapped so that a false-negative pair
    is among them when the batch has one."""
    n = len(snapshot.captions)
    picked = list(range(min(show, n)))
    duplicates = false_negatives(snapshot.captions)
    if len(picked) >= 2 and duplicates and not false_negatives([snapshot.captions[i] for i in picked]):
        i, j = duplicates[0]
        rest = [k for k in picked if k not in (i, j)][: len(picked) - 2]
        picked = sorted({*rest, i, j})
    return picked


def draw_matrix(snapshot: Snapshot, *, show: int = MATRIX_PAIRS, cell: int = CELL) -> Image.Image:
    """The batch's cosine similarities: image i (left) against caption j (top); true pairs on
    the diagonal outlined green, same-caption pairs (false negatives) orange."""
    picked = matrix_indices(snapshot, show)
    n = len(picked)
    sims = snapshot.similarity[np.ix_(picked, picked)]  # (n, n)
    captions = [snapshot.captions[i] for i in picked]
    words, digits, top = _sizes(11, 10, CAPTION_SPACE)
    left = cell + 6
    width = left + n * cell + 60
    same = set(false_negatives(captions))
    shown = f"{n} of {len(snapshot.captions)} pairs" if n < len(snapshot.captions) else f"{n} pairs"
    legend = [f"step {snapshot.step}", "cosine similarity", shown, "green: true pair"]
    if same:
        legend.append("orange: same caption (false negative)")
    lines = _wrapped(legend, words, width - 8) + ["rows: images · columns: captions"]
    line_height = words + 4
    height = top + n * cell + 8 + len(lines) * line_height + 4
    canvas = Image.new("RGB", (width, height), "white")

    # The matrix itself: one coloured cell per (image, caption).
    colours = colorize(sims, "viridis", vmin=-1.0, vmax=1.0)  # (n, n, 3)
    cells = np.repeat(np.repeat(colours, cell, axis=0), cell, axis=1)
    canvas.paste(Image.fromarray(cells), (left, top))

    # Thumbnails down the left side.
    for row, i in enumerate(picked):
        thumb = Image.fromarray(snapshot.images[i]).resize((cell - 2, cell - 2), Image.NEAREST)
        canvas.paste(thumb, (2, top + row * cell + 1))

    # Captions along the top, reading upwards from the matrix.
    strip = Image.new("RGB", (top - 4, n * cell), "white")
    for column, caption in enumerate(captions):
        _put(strip, (4, column * cell + cell / 2), caption, words, (0, 0, 0), anchor="lm")
    canvas.paste(strip.rotate(90, expand=True), (left, 0))

    draw = ImageDraw.Draw(canvas)
    digits = _fitted("−.99", digits, cell - 4).size  # a cell's number stays inside it
    for r in range(n):
        for c in range(n):
            value = float(sims[r, c])
            text = f"{value:.2f}".replace("0.", ".", 1)  # 0.93 → .93, -0.25 → -.25
            ink = (0, 0, 0) if value > 0.3 else (255, 255, 255)
            _put(canvas, (left + (c + 0.5) * cell, top + (r + 0.5) * cell), text, digits, ink, "mm")
    for r, c in same:
        x, y = left + c * cell, top + r * cell
        draw.rectangle((x + 1, y + 1, x + cell - 2, y + cell - 2), outline=FALSE_NEGATIVE, width=3)
    for k in range(n):
        x, y = left + k * cell, top + k * cell
        draw.rectangle((x, y, x + cell - 1, y + cell - 1), outline=TRUE_PAIR, width=3)

    # A colour bar on the right, −1 … 1.
    bar_x = left + n * cell + 14
    ramp = colorize(np.linspace(1, -1, n * cell)[:, None].repeat(12, 1), "viridis", vmin=-1, vmax=1)
    canvas.paste(Image.fromarray(ramp), (bar_x, top))
    ends = _font(_sizes(10)[0])  # the bar's ends have room to grow, the cells' numbers have not
    draw.text((bar_x + 14, top), "1", fill="black", font=ends, anchor="lt")
    draw.text((bar_x + 14, top + n * cell), "−1", fill="black", font=ends, anchor="lb")
    for k, line in enumerate(lines):
        ink = "gray" if k == len(lines) - 1 else "black"
        font = _fitted(line, words, width - 8)
        draw.text((4, top + n * cell + 8 + k * line_height), line, fill=ink, font=font)
    return canvas


def _wrapped(parts: list[str], size: int, width: float) -> list[str]:
    """`parts` joined with " · " into as few lines as fit in `width` pixels at `size`."""
    font, lines = _font(size), []
    for part in parts:
        joined = f"{lines[-1]} · {part}" if lines else part
        if lines and font.getlength(joined) <= width:
            lines[-1] = joined
        else:
            lines.append(part)
    return lines


LOSS_INK = (31, 119, 180)
SCALE_INK = (214, 39, 40)


def _plot_box(width: int, height: int, left: int, top: int, right: int, bottom: int):
    """A white canvas, its pen, and the plot box (x0, y0, x1, y1) inside its margins."""
    canvas = Image.new("RGB", (width, height), "white")
    return canvas, ImageDraw.Draw(canvas), (left, top, width - right, height - bottom)


def draw_curves(snapshot: Snapshot, size: tuple[int, int] = (440, 230)) -> Image.Image:
    """The loss per step (left axis) with the logit scale 1/τ (right axis, 0–100) beside it and
    the loss of guessing, ln N, dotted."""
    words, digits, side, top, bottom = _sizes(11, 10, 44, 24, 34)
    canvas, pen, (x0, y0, x1, y1) = _plot_box(*size, left=side, top=top, right=side, bottom=bottom)
    font, small = _font(words), _font(digits)
    n = len(snapshot.captions)
    chance = math.log(n)
    losses = snapshot.history_loss
    top_loss = max(float(np.nanmax(losses)) if len(losses) else 0.0, chance) * 1.1
    last_step = max(snapshot.steps, 1)

    def x(step):
        return x0 + (x1 - x0) * np.asarray(step, np.float64) / last_step

    def y(value, high):
        return y1 - (y1 - y0) * np.clip(np.asarray(value, np.float64), 0, high) / high

    pen.rectangle((x0, y0, x1, y1), outline="gray")
    for k in range(5):  # axis numbers: loss on the left, 1/τ on the right, steps below
        v = top_loss * k / 4
        pen.text((x0 - 4, y(v, top_loss)), f"{v:.1f}", fill=LOSS_INK, font=small, anchor="rm")
        pen.text((x1 + 4, y(25 * k, 100)), f"{25 * k}", fill=SCALE_INK, font=small, anchor="lm")
        step = round(last_step * k / 4)
        pen.text((x(step), y1 + 4), f"{step}", fill="black", font=small, anchor="mt")
    ly = float(y(chance, top_loss))
    for start in range(int(x0), int(x1), 8):  # guessing: ln N, dotted
        pen.line((start, ly, min(start + 3, x1), ly), fill=LOSS_INK)
    pen.text((x0 + 4, ly - 2), f"guessing: ln {n}", fill=LOSS_INK, font=small, anchor="lb")
    if len(losses) > 1:
        steps = snapshot.history_steps
        pen.line(list(zip(x(steps), y(snapshot.history_scale, 100))), fill=SCALE_INK, width=1)
        pen.line(list(zip(x(steps), y(losses, top_loss))), fill=LOSS_INK, width=2)
    fixed = " (fixed)" if not snapshot.learn_temperature else ""
    pen.text((x0, 4), f"loss {snapshot.loss:.3f}", fill=LOSS_INK, font=font)
    pen.text((x1, 4), f"1/τ {snapshot.logit_scale:.1f}{fixed}", fill=SCALE_INK, font=font,
             anchor="ra")  # fmt: skip
    pen.text(((x0 + x1) / 2, size[1] - 2), f"step (now {snapshot.step})", fill="black",
             font=small, anchor="mb")  # fmt: skip
    return canvas


def draw_embedding_plane(
    snapshot: Snapshot, *, pairs: int = PLANE_PAIRS, size: tuple[int, int] = (360, 340)
) -> Image.Image:
    """Image (●) and caption (■) embeddings of distinct pairs in one 2-D projection (their first
    two principal components), each pair joined by a line that shortens as the model learns."""
    words, margin = _sizes(11, 22)
    canvas, pen, (x0, y0, x1, y1) = _plot_box(*size, left=6, top=margin, right=6, bottom=margin)
    images, texts = snapshot.image_points[:pairs], snapshot.text_points[:pairs]
    both = np.concatenate([images, texts])
    low, high = both.min(0), both.max(0)
    span = np.where(high > low, high - low, 1.0)
    pad = 8

    def place(points):
        unit = (points - low) / span
        return np.stack([x0 + pad + unit[:, 0] * (x1 - x0 - 2 * pad),
                         y1 - pad - unit[:, 1] * (y1 - y0 - 2 * pad)], axis=1)  # fmt: skip

    pen.rectangle((x0, y0, x1, y1), fill=(64, 64, 64))
    at_image, at_text = place(images), place(texts)
    for a, b in zip(at_image, at_text):
        pen.line((*a, *b), fill=(150, 150, 150))
    palette = list(COLOURS.values())
    r = 4
    for (ix, iy), (tx, ty), colour in zip(at_image, at_text, snapshot.point_colours[:pairs]):
        ink = palette[colour]
        pen.ellipse((ix - r, iy - r, ix + r, iy + r), fill=ink, outline="black")
        pen.rectangle((tx - r, ty - r, tx + r, ty + r), fill=ink, outline="black")
    gap = float(np.linalg.norm(images - texts, axis=1).mean()) if len(images) else 0.0
    legend = "● image   ■ caption   (2-D PCA of both)"
    pen.text((x0, 4), legend, fill="black", font=_fitted(legend, words, x1 - x0))
    below = f"step {snapshot.step} · mean distance of a pair {gap:.2f}"
    pen.text((x0, size[1] - 3), below, fill="black", font=_fitted(below, words, x1 - x0),
             anchor="lb")  # fmt: skip
    return canvas


def zero_shot_ranking(snapshot: Snapshot, index: int, top_k: int = TOP_K) -> list[tuple[str, float]]:
    """The prompts ranked for held-out image `index`: (prompt, probability), best first."""
    probabilities = snapshot.zero_shot_probabilities[index]
    order = np.argsort(-probabilities)[:top_k]
    return [(snapshot.zero_shot_labels[k], float(probabilities[k])) for k in order]


def zero_shot_picture(snapshot: Snapshot, index: int, side: int = 160) -> Image.Image:
    """Held-out image `index`, enlarged with its pixels kept square."""
    return Image.fromarray(snapshot.zero_shot_images[index]).resize((side, side), Image.NEAREST)


def describe_zero_shot(snapshot: Snapshot, index: int) -> str:
    truth = snapshot.zero_shot_labels[snapshot.zero_shot_truth[index]]
    best = zero_shot_ranking(snapshot, index, 1)[0][0]
    verdict = "right" if best == truth else f"wrong (it is {truth!r})"
    held = len(snapshot.zero_shot_truth)
    return (
        f"Held-out image {index + 1} of {held}: its colour–shape combination never appeared in "
        f"training. The model ranks {len(snapshot.zero_shot_labels)} prompts "
        f"(\"a photo of a {{colour}} {{shape}}\"); first is {best!r}: {verdict}. "
        f"Zero-shot accuracy on all {held}: {snapshot.zero_shot_accuracy:.0%}."
    )


PAUSED = "Paused: press Train to go on, or Reset to start a new model."


def describe(snapshot: Snapshot, paused: bool = False) -> str:
    """One line for the run's state (`paused`: Stop was pressed after this snapshot)."""
    line = (
        f"Step {snapshot.step} of {snapshot.steps} · loss {snapshot.loss:.3f} · "
        f"1/τ {snapshot.logit_scale:.1f} · matching {snapshot.matching_accuracy:.0%} "
        f"(image→text), {snapshot.text_matching_accuracy:.0%} (text→image) on 64 distinct "
        f"captions · zero-shot on held-out combinations {snapshot.zero_shot_accuracy:.0%} · "
        f"{snapshot.seconds:.1f} s"
    )
    end = snapshot.stopped or (PAUSED if paused else "")
    return f"{line}. {end}" if end else line


def describe_false_negatives(snapshot: Snapshot) -> str:
    """How many same-caption pairs the current batch has, and why they matter."""
    count = len(snapshot.duplicate_pairs) // 2
    there = (
        f"This batch has {count} pair{'s' if count != 1 else ''} of images with the same caption. "
        if count
        else "This batch has no two images with the same caption. "
    )
    return there + FALSE_NEGATIVE_NOTE
