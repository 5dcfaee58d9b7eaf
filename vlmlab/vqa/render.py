"""Drawing VQA answers: each question's answers as bars and table rows; where the model looked to
answer: the answer's map over the photo (ViLT: relevance of its score; BLIP: its question's
cross-attention) and, for BLIP, each question word's map beside it."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
from PIL import Image

from vlmlab.grounding import NOTE
from vlmlab.render import labelled_tiles, map_over
from vlmlab.vqa import AnswerGrounding, AnswerSheet

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


# ---------------------------------------------------------------------------------------------
# The answers: one bar per answer, as long as its score

ANSWER_HEADERS = ["question", "answer", "score"]


def answer_rows(sheet: AnswerSheet) -> list[list]:
    """One row per (question, answer): the table behind the bars."""
    return [
        [item.question, text, float(f"{score:.4g}")]
        for item in sheet.items
        for text, score in item.answers
    ]


def answers_html(sheet: AnswerSheet) -> str:
    """Each question with its answers as bars, and one line on what the numbers mean."""
    colour = "#7c3aed" if sheet.generative else "#2563eb"
    blocks = []
    for item in sheet.items:
        rows = []
        for rank, (text, score) in enumerate(item.answers):
            weight = "font-weight:600;" if rank == 0 else ""
            rows.append(
                f'<span style="{weight}text-align:right">{html.escape(text) or "(empty)"}</span>'
                '<span style="background:rgba(127,127,127,.18);border-radius:4px;height:.9em">'
                f'<span style="display:block;height:100%;width:{100 * score:.1f}%;'
                f'background:{colour};border-radius:4px"></span></span>'
                f'<span style="font-variant-numeric:tabular-nums">{_score(score)}</span>'
            )
        blocks.append(
            f'<div style="margin:0 0 1em"><div style="font-weight:600;margin-bottom:.3em">'
            f"Q: {html.escape(item.question)}</div>"
            '<div style="display:grid;grid-template-columns:minmax(5em,max-content) 1fr 3.5em;'
            f'gap:.3em .6em;align-items:center">{"".join(rows)}</div></div>'
        )
    meaning = (
        f'<p style="font-size:.9em;opacity:.8;margin:0 0 .8em">{html.escape(sheet.meaning)}</p>'
    )
    grid = "display:grid;grid-template-columns:repeat(auto-fill,minmax(22em,1fr));gap:0 2em"
    return f'<div class="vlmlab-answers">{meaning}<div style="{grid}">{"".join(blocks)}</div></div>'


def _score(score: float) -> str:
    return f"{score:.3f}" if score >= 0.001 else f"{score:.1e}"


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
