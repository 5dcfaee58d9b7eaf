"""`python -m vlmlab.cnn.atlas MODEL LAYER`: what every channel of a layer wants to see, in one grid
image (as OpenAI Microscope showed them), and in the lab's disk cache, so that the CNN tab answers
at once in class. Run it before a lecture, or when a Space starts, with the tab's settings
(256 steps at 224×224, the defaults). This package computes the channels; its `__main__` is
the command, which draws their grid.

    python -m vlmlab.cnn.atlas alexnet conv5                  # all 256 channels → alexnet-conv5.png
    python -m vlmlab.cnn.atlas mobilenet_v2 block9 --channels 0-15 --direction hate
"""

from __future__ import annotations

import sys

from vlmlab.cnn import featurevis as cnn_visualize
from vlmlab.errors import LabError


def parse_channels(text: str | None, count: int) -> list[int]:
    """ "0-15,32,40-41" → [0, …, 15, 32, 40, 41]; None → every channel."""
    if not text:
        return list(range(count))
    chosen: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            first, last = int(low), int(high or low)
            chosen += range(first, last + 1)
    except ValueError:
        raise LabError(
            f"Give channels as numbers and ranges, like 0-15,32; got {text[:40]!r}."
        ) from None
    wrong = [c for c in chosen if not 0 <= c < count]
    if wrong or not chosen:
        raise LabError(
            f"This layer has channels 0 to {count - 1}; {text[:40]!r} is not among them."
        )
    return list(dict.fromkeys(chosen))


def visualize_channels(
    name: str, layer: str, channels: list[int], args
) -> list[cnn_visualize.Visualization]:
    """Every chosen channel's visualisation (from the disk cache where it is there), with a
    progress bar on stderr; `args` are the command's (steps, size, seed, direction, batch)."""
    from tqdm import tqdm

    with tqdm(total=len(channels), unit="channel", desc=f"{name} {layer}", file=sys.stderr) as bar:

        def progress(fraction: float, desc: str | None = None) -> None:
            bar.n = round(fraction * len(channels), 2)
            bar.refresh()

        return cnn_visualize.visualize_many(
            name, layer, channels, steps=args.steps, size=args.size, seed=args.seed,
            direction=args.direction, batch=args.batch, pretrained=not args.random_weights,
            progress=progress,
        )  # fmt: skip
