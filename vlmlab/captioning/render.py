"""Drawing captions as HTML, for the Gradio tabs and the Jupyter widgets alike.

Each caption token sits on a colour for its probability, with the number under it (colour is
never the only cue). Under the words, each word's cross-attention map over the photo (a strip
of small maps; one large when chosen). VQA's answer bars are drawn in `vqa_render`.
"""

from __future__ import annotations

import html
import math

import matplotlib
import numpy as np
from PIL import Image

from vlmlab.captioning import Caption, Grounding
from vlmlab.grounding import NOTE
from vlmlab.render import labelled_tiles, map_over

CMAP = "RdYlBu"  # red = unsure, yellow = so-so, blue = sure (readable with red–green blindness)
_BOX = "display:inline-block;text-align:center;line-height:1.15;border-radius:6px;padding:2px 5px"
_SMALL = "display:block;font-size:.55em;opacity:.75;font-variant-numeric:tabular-nums"


def probability_colour(probability: float) -> str:
    """A light CSS colour for a probability in [0, 1] (mixed with white so text stays legible)."""
    r, g, b, _ = matplotlib.colormaps[CMAP](min(max(probability, 0.0), 1.0))
    red, green, blue = (round(255 * (0.35 + 0.65 * c)) for c in (r, g, b))
    return f"rgb({red},{green},{blue})"


def percent(probability: float) -> str:
    """69%, or <1% for the small ones (so nothing reads as a flat zero)."""
    return "<1%" if probability < 0.005 else f"{probability:.0%}"


def caption_html(caption: Caption, *, show_beams: bool = True) -> str:
    """The caption with each token on its probability's colour; the beams below, if any."""
    parts = []
    if caption.prefix:
        parts.append(
            f'<span style="{_BOX};color:#6b7280;font-style:italic" title="your prefix">'
            f'{html.escape(caption.prefix)}<small style="{_SMALL}">prefix</small></span>'
        )
    for token in caption.tokens:
        word = "⏎ end" if token.end else token.text.strip() or "·"
        gap = "0" if not parts else "0.3em" if token.text[:1].isspace() or token.end else "1px"
        colour = probability_colour(token.probability)
        style = f"{_BOX};margin-left:{gap};color:#111;background:{colour}"
        if token.end:
            style += ";font-size:.7em;vertical-align:middle"
        parts.append(
            f'<span style="{style}" title="p = {token.probability:.4f}">{html.escape(word)}'
            f'<small style="{_SMALL}">{percent(token.probability)}</small></span>'
        )
    if not caption.done:
        parts.append('<span style="margin-left:.3em;opacity:.6">…</span>')
    body = "".join(parts) or '<span style="opacity:.6">…</span>'
    out = [f'<div style="font-size:1.45em;line-height:2.4">{body}</div>', _legend()]
    if show_beams and caption.beams:
        out.append(_beams_table(caption))
    return f'<div class="vlmlab-caption">{"".join(out)}</div>'


def beam_rows(caption: Caption) -> list[list]:
    """One row per beam: rank, caption, score, and e^score (a typical token's probability)."""
    return [
        [rank, text, round(score, 4), percent(math.exp(score))]
        for rank, (text, score) in enumerate(caption.beams, start=1)
    ]


BEAM_HEADERS = ["#", "caption", "score", "e^score"]  # caption_notes says what they mean


def caption_notes(caption: Caption) -> str:
    """A few sentences on how to read the numbers, and anything the lab changed."""
    lines = []
    if caption.tokens:
        what = (
            "drawn from the distribution reshaped by temperature and top-p"
            if caption.sampled
            else "given the photo and the words before it"
        )
        ending = (
            "the end token included"
            if caption.tokens[-1].end
            else "it stopped at the maximum length, before choosing to end"
        )
        lines.append(
            f"Each token's colour and number is its probability, {what}. The whole caption "
            f"has probability {caption.probability:.3g}: the product of its "
            f"{len(caption.tokens)} token probabilities ({ending})."
        )
    if caption.beams:
        lines.append(
            f"Beam search kept the {len(caption.beams)} best partial captions at every step. "
            "A beam's score is its average log-probability per token (closer to 0 is better); "
            "e^score is a typical token's probability."
        )
    lines.extend(caption.notes)
    return "\n\n".join(lines)


def _legend() -> str:
    stops = ", ".join(f"{probability_colour(i / 10)} {i * 10}%" for i in range(11))
    bar = (
        f'<span style="display:inline-block;width:10em;height:.8em;border-radius:3px;'
        f'vertical-align:middle;background:linear-gradient(to right, {stops})"></span>'
    )
    return (
        f'<div style="font-size:.85em;opacity:.85;margin:.2em 0 .6em">'
        f"token probability: 0% {bar} 100%</div>"
    )


def _beams_table(caption: Caption) -> str:
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{h}</th>' for h in BEAM_HEADERS)
    rows = "".join(
        "<tr>"
        + "".join(f'<td style="padding:2px 8px">{html.escape(str(c))}</td>' for c in row)
        + "</tr>"
        for row in beam_rows(caption)
    )
    return f'<table style="border-collapse:collapse"><tr>{head}</tr>{rows}</table>'


# ---------------------------------------------------------------------------------------------
# Which patches each word looked at


WORD_SIDE = 160  # px: each word's map in the strip under the caption


def word_maps(caption: Caption) -> list[tuple[np.ndarray, str]]:
    """One (map, word) per generated token, the end token left out; empty when the caption
    carries no maps."""
    if caption.maps is None:
        return []
    return [
        (heat, token.text.strip() or "·")
        for token, heat in zip(caption.tokens, caption.maps, strict=True)
        if not token.end
    ]


def word_picture(view: Image.Image, heat: np.ndarray) -> Image.Image:
    """One word's map over the photo, as the strip shows it."""
    return map_over(view, heat, side=WORD_SIDE)


def grounding_gallery(found: Grounding) -> list[tuple[Image.Image, str]]:
    """One (map over the photo, token) per token of a grounded caption."""
    return [(word_picture(found.image, heat), word) for word, heat in found.pairs()]


def draw_word_maps(
    words: list[str], maps: np.ndarray, view: Image.Image, *, columns: int = 8, side: int = 128
) -> Image.Image:
    """Small multiples: each word's map over the photo, the word above it."""
    pictures = [map_over(view, heat, side=side) for heat in maps]
    return labelled_tiles(pictures, words, columns=columns)


def grounding_notes(*, layer: int | None = None, layers: int | None = None, extra=()) -> str:
    """What the word maps are, then the honest label and any notes."""
    which = (
        "averaged over its heads and all its layers"
        if layer is None
        else f"averaged over the heads of layer {layer}" + (f" of {layers}" if layers else "")
    )
    method = (
        "Each word's map is the text decoder's cross-attention to the image patches from the "
        f"position that predicted that word, {which}; each map is scaled to its own maximum."
    )
    return "\n\n".join([method, NOTE, *extra])
