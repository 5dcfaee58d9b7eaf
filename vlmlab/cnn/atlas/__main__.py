"""`python -m vlmlab.cnn.atlas MODEL LAYER`: the command that computes a layer's channels
(`vlmlab.cnn.atlas`) and draws their grid (`vlmlab.cnn.featurevis_render.atlas`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vlmlab.cache import cache_dir
from vlmlab.cnn import atlas
from vlmlab.cnn import featurevis as cnn_visualize
from vlmlab.cnn import featurevis_render as cnn_visualize_render
from vlmlab.cnn.layers import TOPIC, architecture
from vlmlab.errors import LabError
from vlmlab.models import choices, get_spec


def main(argv: list[str] | None = None) -> int:
    """Compute every chosen channel (see the package's docstring) and draw their grid."""
    parser = argparse.ArgumentParser(
        prog="python -m vlmlab.cnn.atlas", description=atlas.__doc__.splitlines()[0]
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
        channels = atlas.parse_channels(args.channels, layer.shape[0])
        suffix = "" if args.direction == "want" else f"-{args.direction}"
        out = Path(args.out or f"{name}-{layer.name}{suffix}.png")
        results = atlas.visualize_channels(name, layer.name, channels, args)
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


if __name__ == "__main__":
    sys.exit(main())
