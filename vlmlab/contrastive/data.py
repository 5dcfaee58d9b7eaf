"""The contrastive playground's data: captioned synthetic shapes (a colour, a shape, a position
and a size per image), drawn on the fly; a few colour–shape combinations never appear in training
and are kept for zero-shot."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vlmlab.errors import LabError


COLOURS = {  # name → RGB (0–255); all bright against the dark background
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 220, 50),
    "purple": (150, 60, 210),
    "orange": (245, 140, 30),
    "pink": (250, 130, 200),
    "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle", "cross")
POSITIONS = {  # name → (x, y) of the shape's centre, as a fraction of the side
    "on the left": (0.27, 0.5),
    "on the right": (0.73, 0.5),
    "at the top": (0.5, 0.27),
    "at the bottom": (0.5, 0.73),
    "in the middle": (0.5, 0.5),
}
SIZES = {"small": 0.13, "large": 0.22}  # name → radius as a fraction of the side
# Caption templates. The short one repeats often in a batch: those repeats are the false
# negatives a contrastive loss cannot avoid (two images, one caption).
TEMPLATES = (
    "a {size} {colour} {shape} {position}",
    "a {colour} {shape} {position}",
    "a photo of a {size} {colour} {shape}",
    "a {colour} {shape}",
)
ZERO_SHOT_TEMPLATE = "a photo of a {colour} {shape}"
# Never in a training batch; kept for zero-shot. One per shape, each a different colour.
HELD_OUT = (("red", "triangle"), ("blue", "cross"), ("yellow", "circle"), ("purple", "square"))
IMAGE_SIDE = 32  # pixels
NOISE = 10.0  # standard deviation of the pixel noise, in 0–255 units

VOCABULARY = tuple(
    sorted(
        {
            word
            for template in (*TEMPLATES, ZERO_SHOT_TEMPLATE)
            for word in template.split()
            if not word.startswith("{")
        }
        | {word for words in (*COLOURS, *SHAPES, *POSITIONS, *SIZES) for word in words.split()}
    )
)
WORD_INDEX = {word: i + 1 for i, word in enumerate(VOCABULARY)}  # 0 pads
MAX_WORDS = 8


@dataclass(frozen=True)
class Pairs:
    """A batch of captioned images (numpy; what the generator draws)."""

    images: np.ndarray  # (B, H, W, 3) uint8
    captions: tuple[str, ...]  # (B,)
    colours: np.ndarray  # (B,) index into COLOURS
    shapes: np.ndarray  # (B,) index into SHAPES
    positions: np.ndarray  # (B,) index into POSITIONS
    sizes: np.ndarray  # (B,) index into SIZES


def _combos(held_out: bool) -> np.ndarray:
    """(colour, shape) index pairs: the trained ones, or the held-out ones."""
    colours, shapes = list(COLOURS), list(SHAPES)
    kept = {(colours.index(c), shapes.index(s)) for c, s in HELD_OUT}
    every = [(c, s) for c in range(len(colours)) for s in range(len(shapes))]
    return np.array([p for p in every if (p in kept) == held_out], dtype=np.int64)


TRAIN_COMBOS = _combos(held_out=False)  # (28, 2)
HELD_OUT_COMBOS = _combos(held_out=True)  # (4, 2)


def caption_for(colour: int, shape: int, position: int, size: int, template: int) -> str:
    return TEMPLATES[template].format(
        colour=list(COLOURS)[colour],
        shape=SHAPES[shape],
        position=list(POSITIONS)[position],
        size=list(SIZES)[size],
    )


def draw_shapes(
    colours, shapes, positions, sizes, rng: np.random.Generator, side: int = IMAGE_SIDE
) -> np.ndarray:
    """Images of one shape each, all drawn at once with numpy: (B, side, side, 3) uint8."""
    colours, shapes = np.asarray(colours), np.asarray(shapes)
    n = len(colours)
    centres = np.array(list(POSITIONS.values()), np.float32)[np.asarray(positions)] * side
    centres += rng.uniform(-0.06, 0.06, (n, 2)).astype(np.float32) * side  # a little jitter
    radius = np.array(list(SIZES.values()), np.float32)[np.asarray(sizes)] * side
    radius *= rng.uniform(0.9, 1.1, n).astype(np.float32)
    grid = np.arange(side, dtype=np.float32) + 0.5
    dx = grid[None, None, :] - centres[:, 0, None, None]  # (B, 1, W)
    dy = grid[None, :, None] - centres[:, 1, None, None]  # (B, H, 1)
    r = radius[:, None, None]
    circle = dx**2 + dy**2 <= r**2
    square = (np.abs(dx) <= 0.8 * r) & (np.abs(dy) <= 0.8 * r)
    triangle = (np.abs(dy) <= r) & (np.abs(dx) <= (dy + r) / 2)  # apex up
    cross = ((np.abs(dx) <= r / 3) & (np.abs(dy) <= r)) | ((np.abs(dy) <= r / 3) & (np.abs(dx) <= r))
    masks = np.stack(np.broadcast_arrays(circle, square, triangle, cross))  # (4, B, H, W)
    mask = masks[shapes, np.arange(n)]  # (B, H, W)
    paint = np.array(list(COLOURS.values()), np.float32)[colours]  # (B, 3)
    paint += rng.uniform(-15, 15, (n, 3)).astype(np.float32)
    background = rng.uniform(15, 55, (n, 1, 1, 1)).astype(np.float32)
    images = np.where(mask[..., None], paint[:, None, None, :], background)
    images += rng.normal(0, NOISE, images.shape).astype(np.float32)
    return np.clip(images, 0, 255).astype(np.uint8)


def draw_pairs(
    rng: np.random.Generator,
    count: int,
    *,
    held_out: bool = False,
    distinct: bool = False,
    side: int = IMAGE_SIDE,
) -> Pairs:
    """`count` captioned images of the trained combinations (or only the held-out ones).

    `distinct`: every caption different (the full template: size, colour, shape and position).
    """
    combos = HELD_OUT_COMBOS if held_out else TRAIN_COMBOS
    n_pos, n_size = len(POSITIONS), len(SIZES)
    if distinct:
        total = len(combos) * n_pos * n_size
        if count > total:
            raise LabError(f"There are only {total} distinct captions to draw from.")
        pick = rng.choice(total, size=count, replace=False)
        combo, rest = np.divmod(pick, n_pos * n_size)
        position, size = np.divmod(rest, n_size)
        template = np.zeros(count, np.int64)
    else:
        combo = rng.integers(0, len(combos), count)
        position = rng.integers(0, n_pos, count)
        size = rng.integers(0, n_size, count)
        template = rng.integers(0, len(TEMPLATES), count)
    colour, shape = combos[combo, 0], combos[combo, 1]
    images = draw_shapes(colour, shape, position, size, rng, side)
    captions = tuple(
        caption_for(*attributes) for attributes in zip(colour, shape, position, size, template)
    )
    return Pairs(images, captions, colour, shape, position, size)


def tokenize(captions) -> torch.Tensor:
    """Word ids, padded with 0: (B, MAX_WORDS). Unknown words are a sentence, not a crash."""
    ids = np.zeros((len(captions), MAX_WORDS), np.int64)
    for row, caption in enumerate(captions):
        words = _word_ids.get(caption)
        if words is None:
            words = _caption_ids(caption)
            if len(_word_ids) < 4096:  # the captions the generator writes: about a thousand
                _word_ids[caption] = words
        ids[row, : len(words)] = words
    return torch.from_numpy(ids)


_word_ids: dict[str, tuple[int, ...]] = {}  # caption → its word ids (a training step has 64)


def _caption_ids(caption: str) -> tuple[int, ...]:
    words = caption.lower().split()
    unknown = [w for w in words if w not in WORD_INDEX]
    if unknown:
        raise LabError(
            f"The tiny CLIP only knows the words of its captions; it has never seen "
            f"{unknown[0]!r}. Known words: {', '.join(VOCABULARY)}."
        )
    if not words:
        raise LabError("A caption needs at least one word.")
    return tuple(WORD_INDEX[w] for w in words[:MAX_WORDS])


def zero_shot_labels() -> tuple[str, ...]:
    """One prompt per colour–shape combination, held out or not: the zero-shot classes."""
    return tuple(
        ZERO_SHOT_TEMPLATE.format(colour=c, shape=s) for c in COLOURS for s in SHAPES
    )
