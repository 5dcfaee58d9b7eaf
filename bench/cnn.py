"""CNN tab, AlexNet and ResNet-50 at full size: switching layer or channel re-renders from the
cached capture (≤ 5% of one forward); `classify` as `gradio_client` sees it ≤ 1.3× the bare
forward plus preprocessing."""

from __future__ import annotations

import torch

from bench.endpoints import call
from bench.harness import Row, at_most, interleave
from bench.inputs import photo_files, photos

AREA = "cnn"
MODELS = ("alexnet", "resnet50")
NEEDS = set(MODELS)


def rows(ctx) -> list[Row]:
    out = [switch(ctx, name) for name in MODELS]
    out += [classify_via_api(ctx, name) for name in MODELS]
    return out


def switch(ctx, name: str) -> Row:
    from vlmlab import cnn
    from vlmlab.models import load_model

    loaded = load_model(name)
    photo = photos(1)[0]
    cnn.capture_features(photo, name)  # the first call: one forward captures every layer
    layers = cnn.layer_names(name)
    fixed = loaded.processor(photo)[None]  # (1, 3, 224, 224)

    def look(i):  # a layer not drawn before (the warm-up takes the first), a channel in it
        return cnn.feature_maps(photo, name, layers[i + 1], "activation", (i + 1) % 3)

    def forward(_):
        with torch.inference_mode():
            return loaded.model(fixed)

    pair = interleave(look, forward, repeats=min(ctx.scaled(12), len(layers) - 1))
    return at_most(
        AREA, f"{name}: layer/channel switch (redraw)", "1 forward (model only)", pair, 0.05,
        note=f"{len(layers)} layers; each switch draws a new layer's channel grid, the channel "
        "large and its overlay",
    )  # fmt: skip


def classify_via_api(ctx, name: str) -> Row:
    from vlmlab.images import load_image
    from vlmlab.models import load_model

    client = ctx.client()
    loaded = load_model(name)
    repeats = ctx.scaled(12)
    paths = photo_files(ctx.folder / "photos", repeats + 2)
    categories = loaded.weights.meta["categories"]

    def api(i):
        return call(client, "classify", paths[i + 1], model=name)

    def bare(i):  # decode the same file, the model's own transforms, forward, top-5
        x = loaded.processor(load_image(paths[i + 1]))[None]
        with torch.inference_mode():
            top = loaded.model(x).softmax(-1)[0].topk(5)
        return [(categories[j], float(p)) for p, j in zip(top.values, top.indices)]

    pair = interleave(api, bare, repeats=repeats)  # the warm-up loads the model in the app
    return at_most(
        AREA, f"{name}: /classify via gradio_client", "decode + preprocess + forward", pair, 1.3,
        note="new photo each call; the API side includes upload, queue and JSON",
    )  # fmt: skip
