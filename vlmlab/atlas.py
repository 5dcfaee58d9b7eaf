"""`python -m vlmlab.atlas MODEL LAYER`: what every channel of a layer wants to see, in one grid
image (as OpenAI Microscope showed them), and in the lab's disk cache, so that the CNN tab answers
at once in class. Run it before a lecture, or when a Space starts, with the tab's settings
(256 steps at 224×224, the defaults).

    python -m vlmlab.atlas alexnet conv5                  # all 256 channels → alexnet-conv5.png
    python -m vlmlab.atlas mobilenet_v2 block9 --channels 0-15 --direction hate
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vlmlab import cnn_visualize, cnn_visualize_render
from vlmlab.cache import cache_dir
from vlmlab.cnn_layers import TOPIC, architecture
from vlmlab.errors import LabError
from vlmlab.models import choices, get_spec


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vlmlab.atlas", description=__doc__.splitlines()[0]
    )
    parser.add_argument("model", help="one of: " + ", ".join(choices(TOPIC)))
    parser.add_argument("layer", help="a layer, named as in the feature-map view (conv1 …)")
    parser.add_argument("--channels", help="which channels, like 0-15,32 (default: all)")
    parser.add_argument("--direction", choices=cnn_visualize.DIRECTIONS, default="want")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=8, help="channels optimised at once")
    parser.add_argument("--tile", type=int, default=128, help="pixels per channel in the grid")
    parser.add_argument("--columns", type=int, help="tiles per row (default: a square grid)")
    parser.add_argument("--out", help="the grid image (default: MODEL-LAYER[-hate].png)")
    parser.add_argument("--random-weights", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        name = get_spec(args.model, TOPIC).name
        layer = architecture(name).layer(args.layer)
        channels = parse_channels(args.channels, layer.shape[0])
        suffix = "" if args.direction == "want" else f"-{args.direction}"
        out = Path(args.out or f"{name}-{layer.name}{suffix}.png")
        results = _run(name, layer.name, channels, args)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    grid = cnn_visualize_render.atlas(
        [r.image for r in results],
        [str(r.channel) for r in results],
        tile=args.tile,
        columns=args.columns,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    where = "" if args.random_weights else f"; cached in {cache_dir() / 'featurevis'}"
    print(f"{len(results)} channels of {name} {layer.name} → {out}{where}")
    return 0


def _run(name: str, layer: str, channels: list[int], args) -> list[cnn_visualize.Visualization]:
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


if __name__ == "__main__":
    sys.exit(main())
