"""CNN tab, AlexNet and ResNet-50 at full size: switching layer or channel re-renders from the
cached capture (≤ 5% of one forward); `classify` as `gradio_client` sees it ≤ 1.3× the bare
forward plus preprocessing."""

from __future__ import annotations

import statistics

import torch

from bench.app import BrowserLike
from bench.endpoints import call
from bench.harness import Row, at_most, interleave, ms, repeat
from bench.inputs import photo_files, photos

AREA = "cnn"
MODELS = ("alexnet", "resnet50")
NEEDS = set(MODELS)


def rows(ctx) -> list[Row]:
    out = [row for name in MODELS for row in switch(ctx, name)]
    for name in MODELS:
        out += classify_via_api(ctx, name)
    return out


def switch(ctx, name: str) -> list[Row]:
    from vlmlab import cnn
    from vlmlab.cnn import render as cnn_render
    from vlmlab.models import load_model

    loaded = load_model(name)
    photo = photos(1)[0]
    cnn.capture_features(photo, name)  # the first call: one forward captures every layer
    layers = cnn.layer_names(name)
    fixed = loaded.to_device(loaded.processor(photo)[None])  # (1, 3, 224, 224)

    def look(i):  # a layer not drawn before (the warm-up takes the first), a channel in it
        view = cnn.feature_maps(photo, name, layers[i + 1], "activation", (i + 1) % 3)
        return cnn_render.draw_features(view)

    def forward(_):
        with torch.inference_mode():
            return loaded.model(fixed)

    def pick(i):  # another channel of the last layer drawn: its grid is drawn already
        view = cnn.feature_maps(photo, name, layers[-1], "activation", abs(i) % 7)
        return cnn_render.draw_features(view)

    layer_pair = interleave(look, forward, repeats=min(ctx.scaled(12), len(layers) - 1))
    channel_pair = interleave(pick, forward, repeats=ctx.scaled(12))
    return [
        at_most(
            AREA, f"{name}: layer switch (redraw)", "1 forward (model only)", layer_pair, 0.05,
            note=f"{len(layers)} layers; each switch draws a new layer's channel grid, a channel "
            "large and its overlay",
        ),
        at_most(
            AREA, f"{name}: channel switch (redraw)", "1 forward (model only)", channel_pair, 0.05,
            note="the same layer, another channel: framed grid, the channel large, its overlay",
        ),
    ]  # fmt: skip


def classify_via_api(ctx, name: str) -> list[Row]:
    from vlmlab.images import load_image
    from vlmlab.models import load_model

    client = ctx.client()
    loaded = load_model(name)
    repeats = ctx.scaled(12)
    paths = photo_files(ctx.folder / "photos", 2 * repeats + 4)  # first half gradio_client, …
    categories = loaded.weights.meta["categories"]

    def api(i):
        return call(client, "classify", paths[i + 1], model=name)

    def bare(i):  # decode the same file, the model's own transforms, forward, top-5
        x = loaded.to_device(loaded.processor(load_image(paths[i + 1]))[None])
        with torch.inference_mode():
            top = loaded.model(x).softmax(-1)[0].topk(5)
        return [(categories[j], float(p)) for p, j in zip(top.values, top.indices)]

    # The same through Gradio's HTTP API as a page calls it (the photo is on the server already).
    page = BrowserLike(client, "classify")
    on_server = [page.upload(path) for path in paths]  # … second half like a page: all new

    def browser(i):
        return page.call(on_server[repeats + 2 + i], model=name)

    def bare_again(i):
        return bare(repeats + 1 + i)

    pair = interleave(api, bare, repeats=repeats)  # the warm-up loads the model in the app
    like_page = interleave(browser, bare_again, repeats=repeats)
    # Gradio's own floor: the same request for a photo whose answer is cached (no forward).
    floor = statistics.median(repeat(lambda _: browser(0), ctx.scaled(10)))
    return [
        at_most(
            AREA, f"{name}: /classify via gradio_client", "decode + preprocess + forward", pair,
            1.3, note="new photo each call; gradio_client uploads it, queues, polls for the answer",
        ),
        at_most(
            AREA, f"{name}: /classify, HTTP API like a page", "decode + preprocess + forward",
            like_page, 1.3, note="the photo uploaded beforehand (as a page has it), events streamed; "
            f"the same request answered from the cache takes {ms(floor)}: Gradio's own share",
        ),
    ]  # fmt: skip
