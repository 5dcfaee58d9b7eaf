"""Feature visualisation (the CNN tab's "what does this channel want?"): 256 steps at 224×224 on
AlexNet and MobileNetV2, wall time (≤ 15 s on 2 CPU cores) and the time per step against one
forward + backward of the bare model (≤ 1.3×; each step also builds the image from its spectrum
and pads, jitters, scales and rotates it, so the network sees ~236×236)."""

from __future__ import annotations

import torch

from bench.harness import Row, interleave, ms, times

AREA = "featurevis"
CASES = (("alexnet", "relu5"), ("mobilenet_v2", "conv2"))  # the last conv layer: the whole stack
NEEDS = {"alexnet", "mobilenet_v2"}  # MobileNetV2's real weights replace the random ones if here
STEPS, SIZE = 256, 224
PEER_PASSES = 32  # bare forward+backward passes per timing of the peer


def rows(ctx) -> list[Row]:
    import os
    import tempfile

    # A fresh disk cache: a kept --world must not answer a timed run from an earlier one.
    os.environ["VLMLAB_CACHE"] = tempfile.mkdtemp(prefix="vlmlab-featurevis-", dir=ctx.folder)
    out = []
    for name, layer in CASES:
        out += visualize_rows(ctx, name, layer)
    return out


def visualize_rows(ctx, name: str, layer: str) -> list[Row]:
    from vlmlab import cnn
    from vlmlab.models import load_model

    loaded = load_model(name)
    generator = torch.Generator().manual_seed(0)
    pixels = loaded.to_device(torch.rand(1, 3, SIZE, SIZE, generator=generator))

    def bare(_):  # forward + backward to the input of the whole model, as a saliency map does
        for _ in range(PEER_PASSES):
            x = pixels.clone().requires_grad_(True)
            loaded.model(x)[0, 0].backward(inputs=[x])

    def ours(i):  # a new seed each time: never the disk cache
        found = cnn.visualize(name, layer, 0, steps=STEPS, size=SIZE, seed=10_000 + i)
        assert found.complete and not found.cached

    cnn.visualize(name, layer, 0, steps=2, size=SIZE, seed=9_999)  # builds the graph module
    pair = interleave(ours, bare, repeats=ctx.scaled(3, least=2), warmup=0)
    per_step, per_pass = pair.ours / STEPS, pair.peer / PEER_PASSES
    ratio = per_step / per_pass
    note = (
        f"{layer} (the last conv layer), channel 0; median of {len(pair.ours_times)} runs; "
        "the peer is the whole model (classifier too) on a 224×224 input"
    )
    return [
        Row(AREA, f"{name}: visualize, {STEPS} steps at {SIZE}²", "—", ms(pair.ours),
            target="≤ 15 s", ok=pair.ours <= 15, note=note),
        Row(AREA, f"{name}: one visualisation step", "1 forward+backward of the bare model",
            ms(per_step), ms(per_pass), times(ratio), "≤ 1.3×", ratio <= 1.3),
    ]  # fmt: skip
