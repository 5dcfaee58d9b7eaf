"""ViT tab: switching layer, head or query re-renders from the cached forward (≤ 5% of one
ViT-B/16 forward); the first call ≤ 1.2× a bare eager forward with `output_attentions=True`."""

from __future__ import annotations

import torch

from bench.harness import Row, at_most, interleave
from bench.inputs import photos
from bench.world import VIT_B16

AREA = "vit"
NEEDS = {VIT_B16}


def rows(ctx) -> list[Row]:
    from vlmlab import vit
    from vlmlab.models import load_model
    from vlmlab.vit.render import draw_attention_views

    eager = vit.load_vit(VIT_B16)  # what the tab uses: attentions come back
    plain = load_model(VIT_B16)  # the library's default attention: one ordinary forward
    pictures = photos(ctx.scaled(12) + 4)
    processor = eager.processor

    def pixels(i):
        return eager.to_device(processor(images=pictures[i], return_tensors="pt")["pixel_values"])

    # First call: the engine's whole inspection (preprocess, forward, numpy) on a new photo,
    # against preprocessing plus a bare eager forward that returns the attentions.
    def first_call(i):
        return vit.inspect_vit(pictures[i + 2], VIT_B16)

    def bare_eager(i):
        with torch.inference_mode():
            return eager.model(pixel_values=pixels(i + 2), output_attentions=True)

    first = interleave(first_call, bare_eager, repeats=ctx.scaled(10))

    # Switch: a new (layer, head, query) on the photo already inspected: what the handler redraws
    # (heat map, all heads, rollout, text) against one ordinary forward of the model alone.
    inspection = vit.inspect_vit(pictures[0], VIT_B16)
    layers, heads = inspection.num_layers, inspection.num_heads
    queries = [vit.CLS] + [str(n) for n in range(1, inspection.num_patches + 1, 17)]
    fixed = plain.to_device(pixels(0))

    def switch(i):
        i = abs(i)
        choice = (
            i % layers + 1,
            str(i % heads + 1) if i % 3 else vit.MEAN,
            queries[i % len(queries)],
        )
        vit.inspect_vit(pictures[0], VIT_B16)  # the cache hit the handler makes
        return draw_attention_views(inspection, *choice)

    def forward(_):
        with torch.inference_mode():
            return plain.model(pixel_values=fixed)

    swap = interleave(switch, forward, repeats=ctx.scaled(12))
    grid = f"{inspection.grid[0]}×{inspection.grid[1]} patches, {layers} layers × {heads} heads"
    return [
        at_most(
            AREA, "layer/head/query switch (redraw all views)", "1 ViT-B/16 forward", swap, 0.05,
            note=f"ViT-B/16 224², {grid}; the switch redraws heat map, every head, rollout and text",
        ),
        at_most(
            AREA, "first call: inspect_vit (new photo)", "preprocess + eager fwd, attentions",
            first, 1.2,
        ),
    ]  # fmt: skip
