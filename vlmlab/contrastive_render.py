"""Drawing a tiny CLIP as it learns: the batch's N×N matrix with its images down one side and its
captions along the other (CLIP paper, Fig. 1), the loss and temperature, the shared embedding
space in 2-D, and zero-shot on the held-out combinations.

The matrix is drawn with numpy and Pillow (it is redrawn every few steps while a run trains);
the curves and the embedding plane are small matplotlib `Figure`s.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from vlmlab.contrastive import COLOURS, Snapshot, false_negatives
from vlmlab.render import colorize, figure_to_image

MATRIX_PAIRS = 16  # the matrix shows at most this many pairs of the batch
CELL = 30  # pixels per matrix cell (and thumbnail)
CAPTION_SPACE = 210  # pixels above the matrix for the captions
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


@functools.lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


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
    left, top, bottom = cell + 6, CAPTION_SPACE, 40
    width, height = left + n * cell + 60, top + n * cell + bottom
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
    font = _font(11)
    strip = Image.new("RGB", (top - 4, n * cell), "white")
    pen = ImageDraw.Draw(strip)
    for column, caption in enumerate(captions):
        pen.text((4, column * cell + cell / 2), caption, fill="black", font=font, anchor="lm")
    canvas.paste(strip.rotate(90, expand=True), (left, 0))

    draw = ImageDraw.Draw(canvas)
    number = _font(10)
    for r in range(n):
        for c in range(n):
            value = sims[r, c]
            x, y = left + c * cell, top + r * cell
            ink = "black" if value > 0.3 else "white"
            draw.text((x + cell / 2, y + cell / 2), f"{value:.2f}"[-3 if value >= 0 else -4 :].replace("0.", "."),
                      fill=ink, font=number, anchor="mm")  # fmt: skip
    same = set(false_negatives(captions))
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
    draw.text((bar_x + 14, top), "1", fill="black", font=number, anchor="lt")
    draw.text((bar_x + 14, top + n * cell), "−1", fill="black", font=number, anchor="lb")
    shown = f"{n} of {len(snapshot.captions)} pairs" if n < len(snapshot.captions) else f"{n} pairs"
    legend = f"step {snapshot.step} · cosine similarity · {shown} · green: true pair"
    if same:
        legend += " · orange: same caption (false negative)"
    draw.text((4, top + n * cell + 8), legend, fill="black", font=font)
    draw.text((4, top + n * cell + 23), "rows: images · columns: captions", fill="gray", font=font)
    return canvas


def draw_curves(snapshot: Snapshot) -> Image.Image:
    """The loss per step with the logit scale 1/τ beside it, and the accuracies so far."""
    figure = Figure(figsize=(5.2, 2.6), layout="constrained")
    ax = figure.add_subplot()
    steps = snapshot.history_steps
    if len(steps):
        ax.plot(steps, snapshot.history_loss, color="#1f77b4", lw=1)
    n = len(snapshot.captions)
    ax.axhline(math.log(n), color="#1f77b4", ls=":", lw=1)
    ax.text(0, math.log(n), f" chance: ln {n}", color="#1f77b4", fontsize=7, va="bottom")
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("loss (symmetric cross-entropy)", color="#1f77b4", fontsize=8)
    ax.set_xlim(0, max(snapshot.steps, 1))
    ax.set_ylim(bottom=0)
    ax.tick_params(labelsize=7)
    twin = ax.twinx()
    if len(steps):
        twin.plot(steps, snapshot.history_scale, color="#d62728", lw=1)
    fixed = "" if snapshot.learn_temperature else " (fixed)"
    twin.set_ylabel(f"logit scale 1/τ{fixed}", color="#d62728", fontsize=8)
    twin.set_ylim(0, 105)
    twin.tick_params(labelsize=7)
    ax.set_title(
        f"step {snapshot.step}: loss {snapshot.loss:.3f} · 1/τ = {snapshot.logit_scale:.1f}",
        fontsize=9,
    )
    return figure_to_image(figure, dpi=80)


def draw_embedding_plane(snapshot: Snapshot, *, pairs: int = PLANE_PAIRS) -> Image.Image:
    """Image (●) and caption (■) embeddings of distinct pairs in one 2-D projection (their first
    two principal components), each pair joined by a line that shortens as the model learns."""
    figure = Figure(figsize=(4.4, 4.0), layout="constrained")
    ax = figure.add_subplot()
    images, texts = snapshot.image_points[:pairs], snapshot.text_points[:pairs]
    palette = np.array(list(COLOURS.values()), np.float32) / 255
    colours = palette[snapshot.point_colours[:pairs]]
    for (x0, y0), (x1, y1) in zip(images, texts):
        ax.plot((x0, x1), (y0, y1), color="0.6", lw=0.7, zorder=1)
    ax.scatter(images[:, 0], images[:, 1], c=colours, marker="o", s=28, edgecolors="black",
               linewidths=0.5, label="image", zorder=2)  # fmt: skip
    ax.scatter(texts[:, 0], texts[:, 1], c=colours, marker="s", s=28, edgecolors="black",
               linewidths=0.5, label="caption", zorder=2)  # fmt: skip
    ax.set_facecolor("0.25")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_xticks([])
    ax.set_yticks([])
    gap = float(np.linalg.norm(images - texts, axis=1).mean()) if len(images) else 0.0
    ax.set_title(f"shared embedding space (2-D PCA) · mean pair distance {gap:.2f}", fontsize=8)
    return figure_to_image(figure, dpi=80)


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


def describe(snapshot: Snapshot) -> str:
    """One line for the run's state."""
    line = (
        f"Step {snapshot.step} of {snapshot.steps} · loss {snapshot.loss:.3f} · "
        f"1/τ {snapshot.logit_scale:.1f} · matching {snapshot.matching_accuracy:.0%} "
        f"(image→text), {snapshot.text_matching_accuracy:.0%} (text→image) on 64 distinct "
        f"captions · zero-shot on held-out combinations {snapshot.zero_shot_accuracy:.0%} · "
        f"{snapshot.seconds:.1f} s"
    )
    return f"{line}. {snapshot.stopped}" if snapshot.stopped else line


def describe_false_negatives(snapshot: Snapshot) -> str:
    """How many same-caption pairs the current batch has, and why they matter."""
    count = len(snapshot.duplicate_pairs) // 2
    there = (
        f"This batch has {count} pair{'s' if count != 1 else ''} of images with the same caption. "
        if count
        else "This batch has no two images with the same caption. "
    )
    return there + FALSE_NEGATIVE_NOTE
