"""Drawing where a VQA model looked to answer: for each question, the answer's map over the photo
(ViLT: relevance of its score; BLIP: its question's cross-attention) and, for BLIP, each question
word's map beside it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from vlmlab.grounding import NOTE
from vlmlab.render import labelled_tiles, map_over
from vlmlab.vqa import AnswerGrounding

MAX_WORDS = 8  # word maps drawn per question (the rest: a note)


def draw_answer_grounding(
    found: Sequence[AnswerGrounding], *, side: int = 192, word_side: int = 128
) -> Image.Image:
    """One row per question: its answer's map, large, then (BLIP) its words' maps, small."""
    rows = []
    for item in found:
        title = f"{_short(item.question, 24)}  A: {item.answer or '(empty)'}"
        big = labelled_tiles([map_over(item.image, item.map, side=side)], [title], columns=1)
        parts = [np.asarray(big)]
        if item.word_maps is not None and len(item.word_maps):
            words = list(item.words[:MAX_WORDS])
            small = labelled_tiles(
                [map_over(item.image, heat, side=word_side) for heat in item.word_maps[:MAX_WORDS]],
                words,
                columns=len(words),
            )
            parts.append(_pad(np.asarray(small), big.height))
        rows.append(_beside(parts))
    return Image.fromarray(_stack(rows)) if rows else Image.new("RGB", (1, 1), "white")


def describe_answer_grounding(found: Sequence[AnswerGrounding]) -> list[str]:
    """The method (once per kind of model), the honest label, then any notes."""
    lines = list(dict.fromkeys(item.method for item in found))
    lines.append(NOTE)
    for item in found:
        lines.extend(note for note in item.notes if note != NOTE)
        if item.word_maps is not None and len(item.words) > MAX_WORDS:
            lines.append(
                f"“{_short(item.question)}”: the first {MAX_WORDS} of its {len(item.words)} "
                "words are drawn."
            )
    return list(dict.fromkeys(lines))


def _beside(parts: list[np.ndarray], gap: int = 12) -> np.ndarray:
    height = max(part.shape[0] for part in parts)
    padded = [_pad(part, height) for part in parts]
    spacer = np.full((height, gap, 3), 255, np.uint8)
    out = []
    for part in padded:
        out.extend([part, spacer])
    return np.hstack(out[:-1])


def _stack(rows: list[np.ndarray], gap: int = 10) -> np.ndarray:
    width = max(row.shape[1] for row in rows)
    out = []
    for row in rows:
        canvas = np.full((row.shape[0] + gap, width, 3), 255, np.uint8)
        canvas[: row.shape[0], : row.shape[1]] = row
        out.append(canvas)
    return np.vstack(out)[:-gap]


def _pad(part: np.ndarray, height: int) -> np.ndarray:
    if part.shape[0] >= height:
        return part
    canvas = np.full((height, part.shape[1], 3), 255, np.uint8)
    canvas[: part.shape[0]] = part
    return canvas


def _short(text: str, size: int = 40) -> str:
    return text if len(text) <= size else text[: size - 1].rstrip() + "…"
