"""Drawing CLIP's results: the contrastive-pretraining matrix (images × texts, as in the paper's
Figure 1), zero-shot probability bars, the robustness probe's side-by-side columns, and where in
the photo each label is found (relevance maps as small multiples)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from matplotlib.patches import Rectangle
from PIL import Image

from vlmlab.clip import RelevanceMaps, SimilarityMatrix, ZeroShotResult
from vlmlab.clip.probe import RobustnessProbe, Verdict
from vlmlab.render import figure_to_image, labelled_tiles, map_over

PAIR_COLOUR = "#f28e2b"  # the diagonal of matching pairs
_THUMB = 72  # thumbnail side in pixels, at 100 dpi
_SAVE_DPI = 100  # figure_to_image's resolution


def draw_similarity(
    matrix: SimilarityMatrix,
    images: Sequence[Image.Image],
    names: Sequence[str] | None = None,
    *,
    softmax: bool = False,
    pairs: bool = False,
) -> Image.Image:
    """The annotated N×M heat map: image thumbnails down the side, texts across the top.

    `softmax` shows each row as CLIP's probabilities over the texts; `pairs` outlines the
    diagonal (image i belongs with text i) when there are as many images as texts.
    """
    figure, _ = _similarity_figure(matrix, images, names, softmax=softmax, pairs=pairs)
    return figure_to_image(figure)


def similarity_cell(
    matrix: SimilarityMatrix,
    images: Sequence[Image.Image],
    names: Sequence[str] | None,
    x: float,
    y: float,
    *,
    softmax: bool = False,
    pairs: bool = False,
) -> tuple[int, int] | None:
    """The (image, text) cell at pixel (x, y) of `draw_similarity`'s picture, or None outside."""
    left, top, width, height = similarity_box(matrix, images, names, softmax=softmax, pairs=pairs)
    rows, cols = matrix.cosines.shape
    col = (x - left) / width * cols
    row = (y - top) / height * rows
    if not (0 <= col < cols and 0 <= row < rows):
        return None
    return int(row), int(col)


def similarity_box(
    matrix: SimilarityMatrix,
    images: Sequence[Image.Image],
    names: Sequence[str] | None,
    *,
    softmax: bool = False,
    pairs: bool = False,
) -> tuple[float, float, float, float]:
    """Where the matrix's cells lie in `draw_similarity`'s picture: (left, top, width, height)
    in its pixels, for the same arguments."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure, ax = _similarity_figure(matrix, images, names, softmax=softmax, pairs=pairs)
    try:
        renderer = FigureCanvasAgg(figure).get_renderer()
        tight = figure.get_tightbbox(renderer)  # inches: what bbox_inches="tight" keeps
        pad = matplotlib.rcParams["savefig.pad_inches"]
        box = ax.get_window_extent(renderer).transformed(figure.dpi_scale_trans.inverted())
        inch = _SAVE_DPI  # pixels per inch of the saved picture
        left = (box.x0 - tight.x0 + pad) * inch
        top = (tight.y1 + pad - box.y1) * inch
        return left, top, box.width * inch, box.height * inch
    finally:
        figure.clear()


def _similarity_figure(matrix, images, names, *, softmax: bool, pairs: bool):
    values = matrix.probabilities() if softmax else matrix.cosines  # (N, M)
    rows, cols = values.shape
    names = list(names) if names is not None else [f"image {i + 1}" for i in range(rows)]
    width = 2.4 + 1.25 * cols
    height = 1.6 + 0.95 * rows
    figure = Figure(figsize=(width, height))
    ax = figure.add_subplot()
    vmin, vmax = (0.0, 1.0) if softmax else (float(values.min()), float(values.max()))
    mesh = ax.imshow(values, cmap="Blues", vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(cols))
    ax.set_xticklabels(
        [f"T{j + 1}: " + _wrap(text, 16) for j, text in enumerate(matrix.texts)],
        fontsize=8,
        rotation=0 if cols <= 5 else 35,
        ha="center" if cols <= 5 else "left",
    )
    ax.xaxis.tick_top()
    ax.set_yticks(range(rows))
    ax.set_yticklabels([f"I{i + 1}\n{_wrap(name, 12)}" for i, name in enumerate(names)], fontsize=8)
    ax.tick_params(axis="y", pad=_THUMB * 0.75 + 6, length=0)
    ax.tick_params(axis="x", length=0)
    middle = (vmin + vmax) / 2
    for i in range(rows):
        for j in range(cols):
            value = values[i, j]
            text = f"{value:.0%}" if softmax else f"{value:.2f}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=9,
                color="white" if value > middle else "#08306b",
            )
    for i, image in enumerate(images[:rows]):
        thumb = image.convert("RGB").copy()
        thumb.thumbnail((_THUMB, _THUMB))
        box = OffsetImage(np.asarray(thumb), zoom=0.75)
        ax.add_artist(
            AnnotationBbox(
                box,
                (0, i),
                xycoords=("axes fraction", "data"),
                xybox=(-_THUMB * 0.4, 0),
                boxcoords="offset points",
                frameon=False,
                annotation_clip=False,
            )
        )
    if pairs and rows == cols:
        for i in range(rows):
            ax.add_patch(
                Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=PAIR_COLOUR, linewidth=3)
            )
    for spine in ax.spines.values():
        spine.set_visible(False)
    colourbar = figure.colorbar(mesh, ax=ax, fraction=0.04, pad=0.02)
    colourbar.ax.tick_params(labelsize=7)
    if softmax and matrix.scoring == "sigmoid":
        title = (
            f"sigmoid({matrix.logit_scale:.0f} × cosine {matrix.logit_bias:+.1f}) of each pair "
            "on its own (SigLIP)"
        )
    elif softmax:
        title = f"Row-wise softmax of {matrix.logit_scale:.0f} × cosine: which text fits each image"
    else:
        title = "Cosine similarity Iᵢ·Tⱼ of image and text embeddings"
    if pairs and rows == cols:
        title += "  (outlined: the true pairs)"
    ax.set_xlabel(title, fontsize=9)
    return figure, ax


def draw_zero_shot(result: ZeroShotResult, *, top_k: int = 10) -> Image.Image:
    """Probability bars, most likely on top, each with its raw cosine similarity."""
    rows = result.table(top_k)
    figure = Figure(figsize=(6.4, 0.9 + 0.38 * len(rows)))
    ax = figure.add_subplot()
    labels = [_wrap(label, 34, lines=1) for label, *_ in rows]
    probabilities = [p for _, p, _, _ in rows]
    positions = np.arange(len(rows))[::-1]
    ax.barh(positions, probabilities, color="#4e79a7", height=0.7)
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_xlim(0, 1.22)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.tick_params(axis="x", labelsize=8)
    for y, (_, p, cosine, _) in zip(positions, rows):
        ax.text(p + 0.01, y, f"{p:.1%}  (cos {cosine:+.3f})", va="center", fontsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    prompts = (
        f"“{result.templates[0]}”"
        if len(result.templates) == 1
        else f"an ensemble of {len(result.templates)} templates"
    )
    ax.set_title(f"{_scoring_formula(result)}, {prompts}", fontsize=9)
    return figure_to_image(figure)


def draw_probe(result: RobustnessProbe, *, clip_title: str = "CLIP", cnn_title: str = "CNN"):
    """One column per distortion: the picture, CLIP's top classes, the CNN's top classes.

    A ✓ marks a model that still gives the original's top class, a ✗ one that changed its mind.
    """
    columns = result.columns
    figure = Figure(figsize=(2.5 * len(columns), 5.4))
    grid = figure.add_gridspec(3, len(columns), height_ratios=(2.2, 1.4, 1.4), hspace=0.5)
    held = {"clip": result.held("clip"), "cnn": result.held("cnn")}
    for c, column in enumerate(columns):
        ax = figure.add_subplot(grid[0, c])
        ax.imshow(np.asarray(column.image))
        ax.set_title(column.title, fontsize=10)
        ax.axis("off")
        for r, (which, name, colour) in enumerate(
            (("clip", clip_title, "#4e79a7"), ("cnn", cnn_title, "#e15759")), start=1
        ):
            _draw_verdict(
                figure.add_subplot(grid[r, c]),
                getattr(column, which),
                name,
                colour,
                held[which][c] if c else None,
            )
    return figure_to_image(figure)


def _draw_verdict(ax, verdict: Verdict, name: str, colour: str, held: bool | None) -> None:
    mark = {True: "  ✓ same", False: "  ✗ changed", None: ""}[held]
    ax.set_title(name + mark, fontsize=8, loc="left")
    if verdict.error is not None:
        ax.axis("off")
        ax.text(
            0,
            1,
            _wrap(verdict.error.split(". ")[0].rstrip(".") + ".", 34, lines=6),  # all in the notes
            fontsize=7,
            va="top",
            color="#7f7f7f",
            transform=ax.transAxes,
        )
        return
    labels = [_wrap(label, 22, lines=1) for label, _ in verdict.predictions]
    scores = [score for _, score in verdict.predictions]
    positions = np.arange(len(labels))[::-1]
    ax.barh(positions, scores, color=colour, alpha=0.35, height=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, len(labels) - 0.5)
    ax.set_yticks([])
    ax.set_xticks([])
    for y, label, score in zip(positions, labels, scores):
        ax.text(
            0.02,
            y,
            f"{label}  {score:.0%}",
            va="center",
            fontsize=7.5,
            transform=ax.get_yaxis_transform(),
        )
    for spine in ("top", "right", "bottom"):
        ax.spines[spine].set_visible(False)


def relevance_gallery(found: RelevanceMaps, *, side: int = 224) -> list[tuple[Image.Image, str]]:
    """One (picture, caption) per label: its relevance map over the photo as CLIP saw it."""
    return [
        (map_over(found.image, heat, side=side), f"{text}  (logit {logit:.1f})")
        for text, heat, logit in zip(found.texts, found.maps, found.logits, strict=True)
    ]


def draw_relevance(found: RelevanceMaps, *, columns: int = 4, side: int = 160) -> Image.Image:
    """Small multiples: each label's relevance map over the photo, the label above it."""
    pictures = [map_over(found.image, heat, side=side) for heat in found.maps]
    return labelled_tiles(pictures, list(found.texts), columns=columns)


def describe_relevance(found: RelevanceMaps) -> list[str]:
    """What the relevance maps are, in sentences, then the notes (the honest label first)."""
    rows, cols = found.grid
    through = (
        "the last layer"
        if found.start_layer == found.layers
        else f"layers {found.start_layer}–{found.layers}"
    )
    method = (
        f"Relevance (Chefer et al., 2021) of each label's logit to the {rows}×{cols} patches: "
        f"gradient × attention, kept where positive and averaged over heads, followed through "
        f"{through} of {found.layers} of CLIP's vision tower, from its CLS token. Each map is "
        "scaled to its own maximum (dark: none)."
    )
    return [found.notes[0], method, *found.notes[1:]] if found.notes else [method]


def describe_zero_shot(result: ZeroShotResult) -> list[str]:
    """What the numbers mean, in sentences, then the notes (labels cut at the token limit…)."""
    count = len(result.templates)
    prompts = (
        f"the prompt “{result.templates[0]}”"
        if count == 1
        else f"{count} templates, their text embeddings averaged (prompt ensembling)"
    )
    scale = result.logit_scale
    meaning = (
        f"Logit scale {scale:.2f}: probability = {_scoring_formula(result)}, with {prompts}."
    )
    return [meaning, *result.notes]


def _scoring_formula(result: ZeroShotResult) -> str:
    """CLIP: softmax over the labels; SigLIP: a sigmoid for each label on its own."""
    scale = result.logit_scale
    if result.scoring == "sigmoid":
        return (
            f"sigmoid({scale:.1f} × cosine {result.logit_bias:+.2f}) for each of "
            f"{len(result.labels)} labels on its own"
        )
    return f"softmax({scale:.1f} × cosine) over {len(result.labels)} labels"


def describe_similarity(matrix: SimilarityMatrix, *, pairs: bool = False) -> list[str]:
    rows, cols = matrix.cosines.shape
    summary = (
        f"{rows} images × {cols} texts. Cosines range from {matrix.cosines.min():+.3f} to "
        f"{matrix.cosines.max():+.3f}; CLIP's logit scale is {matrix.logit_scale:.2f}."
    )
    lines = [summary]
    if pairs and rows != cols:
        lines.append(
            f"Pairs are outlined only with as many texts as images (here {rows} and {cols})."
        )
    return lines + list(matrix.notes)


def describe_probe(result: RobustnessProbe) -> list[str]:
    lines = ["✓: still the original's top class; ✗: changed its mind."]
    changed = len(result.columns) - 1
    for which, name in (("clip", "CLIP"), ("cnn", "The CNN")):
        errors = [getattr(column, which).error for column in result.columns]
        if any(errors):
            lines.append(f"{name} could not answer: {next(e for e in errors if e)}")
        elif changed:
            held = sum(result.held(which)[1:])
            lines.append(f"{name} kept its answer for {held} of {changed} changed photos.")
    return lines


def _wrap(text: str, width: int, *, lines: int = 3) -> str:
    wrapped = textwrap.wrap(text, width) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1] + "…"
    return "\n".join(wrapped)
