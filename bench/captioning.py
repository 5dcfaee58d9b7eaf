"""Captioning tab, full-size BLIP base on the CPU: the whole caption ≤ 1.05× a bare
`model.generate` with the same settings; the first streamed word reaches a `gradio_client` within
25% of the whole caption's time. Grounding a 20-token caption ≤ 1.3× one teacher-forced forward of
it (the image encoded once); a streamed caption with each word's map ≤ 1.1× the same without; the
Captioning tab's stream, its word strip ready to send with each word, ≤ 1.25× the engine's stream."""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from bench.endpoints import submit
from bench.harness import Row, at_most, interleave, ms, timed, times
from bench.inputs import photo, photo_files, photos
from bench.world import BLIP_BASE

AREA = "captioning"
NEEDS = {BLIP_BASE}
TOKENS = 30  # the tab's default maximum length; greedy, as the tab starts


def rows(ctx) -> list[Row]:
    whole, encoder_share = whole_caption(ctx)
    return [
        whole, first_word(ctx, encoder_share), grounding(ctx), streamed_maps(ctx), tab_strip(ctx)
    ]


CAPTION = (
    "a red truck is parked on a street lined with trees while a man in a blue coat walks his "
    "dog past the old brick houses"
)
GROUNDED = 20  # tokens


def grounding(ctx) -> Row:
    """`ground` of a 20-token caption against one teacher-forced forward of BLIP with the same
    caption (vision encoder once, decoder once), a new photo each call."""
    from vlmlab import captioning
    from vlmlab.models import load_model

    loaded = load_model(BLIP_BASE)
    tokenizer = loaded.processor.tokenizer
    ids = tokenizer(CAPTION, add_special_tokens=False).input_ids[:GROUNDED]
    text = tokenizer.decode(ids)
    repeats = ctx.scaled(6)
    pictures = [photo(7_000 + i) for i in range(repeats + 3)]

    def ours(i):
        captioning.clear_caches()  # the photo is new to the lab: its encoder runs
        return captioning.ground(pictures[i + 2], text)

    def forward(i):
        inputs = loaded.processor(images=pictures[i + 2], return_tensors="pt")
        tokens = torch.tensor([[loaded.model.config.text_config.bos_token_id, *ids]])
        with torch.inference_mode():
            return loaded.model(
                pixel_values=loaded.to_device(inputs.pixel_values),
                input_ids=tokens.to(loaded.device),
            )

    count = len(ours(-2))
    pair = interleave(ours, forward, repeats=repeats)
    return at_most(
        AREA, f"ground, {count}-token caption, new photo", "preprocess + teacher-forced forward",
        pair, 1.3, note="BLIP base: per-token cross-attention maps from one decoder pass",
    )  # fmt: skip


def streamed_maps(ctx) -> Row:
    """The streamed caption with each word's map against the same stream without maps, on the
    same photo, both cold (the same tokens, so the same work but the maps)."""
    from vlmlab import captioning

    repeats = ctx.scaled(6)
    pictures = [photo(8_000 + i) for i in range(repeats + 3)]

    def stream(i, maps):
        captioning.clear_caches()
        return list(captioning.caption_stream(pictures[i + 2], max_new_tokens=TOKENS, maps=maps))

    with_maps = stream(-2, True)[-1]
    without = stream(-2, False)[-1]
    same = with_maps.text == without.text and with_maps.maps.shape[0] == len(with_maps.tokens)
    pair = interleave(lambda i: stream(i, True), lambda i: stream(i, False), repeats=repeats)
    row = at_most(
        AREA, f"caption_stream with word maps, {len(with_maps.tokens)} tokens",
        "caption_stream without maps", pair, 1.1,
        note="maps caught from the decoder's own cross-attention as it runs; same photo, cold"
        + ("" if same else "; CAPTIONS DIFFER"),
    )  # fmt: skip
    return row if same else dataclasses.replace(row, ok=False)


def tab_strip(ctx) -> Row:
    """The Captioning tab's streamed caption with each word's map, every part's strip prepared as
    Gradio sends it, against the engine's stream with maps (same photo, both cold)."""
    import gradio as gr

    from demo import captioning_tab
    from demo.common import open_photo
    from vlmlab import captioning

    repeats = ctx.scaled(6)
    paths = photo_files(ctx.folder / "photos", repeats + 3)
    strip = gr.Gallery(format="png")
    settings = (BLIP_BASE, "greedy", 1, 1.0, 0.9, TOKENS, "")

    def tab(i):
        captioning.clear_caches()
        parts = list(captioning_tab.caption_views(paths[i + 2], *settings, None, maps=True))
        for part in parts:
            strip.postprocess(part["maps"])
        return parts

    def engine(i):
        captioning.clear_caches()
        image = open_photo(paths[i + 2]).image
        return list(captioning.caption_stream(image, max_new_tokens=TOKENS, maps=True))

    words = len(tab(-2)[-1]["maps"])
    pair = interleave(tab, engine, repeats=repeats)
    return at_most(
        AREA, f"Captioning tab's stream with its word strip, {words} words",
        "caption_stream with word maps", pair, 1.25,
        note="each word's map drawn and written once, then sent as that file with later words",
    )  # fmt: skip


def whole_caption(ctx) -> tuple[Row, float]:
    """The caption against bare generate; also what share of it the vision encoder takes."""
    from vlmlab import captioning
    from vlmlab.models import load_model

    loaded = load_model(BLIP_BASE)
    repeats = ctx.scaled(6)
    pictures = photos(repeats + 3)  # new photos: the cached image embeddings must miss

    def ours(i):
        return captioning.caption(pictures[i + 2], max_new_tokens=TOKENS)

    def bare(i):
        inputs = loaded.processor(images=pictures[i + 2], return_tensors="pt")
        with torch.inference_mode():
            return loaded.model.generate(
                **loaded.to_device(dict(inputs)),
                max_new_tokens=TOKENS,
                num_beams=1,
                do_sample=False,
            )

    # The same tokens both ways, or the comparison would time different work.
    mine = [token.token_id for token in ours(-2).tokens]
    theirs = bare(-2)[0].tolist()[1:]  # after [DEC]
    same = theirs[: len(mine)] == mine and len(theirs) <= len(mine) + 1  # (+ the end token)
    pair = interleave(ours, bare, repeats=repeats, warmup=0)
    pixels = loaded.to_device(
        loaded.processor(images=pictures[0], return_tensors="pt").pixel_values
    )
    with torch.inference_mode():
        encoder = statistics.median(
            timed(lambda: loaded.model.vision_model(pixel_values=pixels)) for _ in range(3)
        )
    row = at_most(
        AREA, f"caption, greedy, {len(mine)} tokens", "preprocess + model.generate", pair, 1.05,
        note="BLIP base: ViT-B/16 at 384² + 12-layer decoder; new photo each call"
        + ("" if same else f"; TOKENS DIFFER from generate ({len(mine)} vs {len(theirs)})"),
    )  # fmt: skip
    return (row if same else dataclasses.replace(row, ok=False)), encoder / pair.peer


def first_word(ctx, encoder_share: float) -> Row:
    """Stream captions through the API and time the first word against the whole caption."""
    client = ctx.client()
    paths = photo_files(ctx.folder / "photos", ctx.scaled(6) + 1)
    firsts, wholes = [], []
    for i, path in enumerate(paths):
        start = time.perf_counter()
        job = submit(client, "caption", path, max_new_tokens=TOKENS)  # greedy, the tab's default
        first = None
        for update in job:
            if first is None and update[0].strip():  # the caption text box has a word in it
                first = time.perf_counter() - start
        whole = time.perf_counter() - start
        if i == 0:
            continue  # loads the model in the app
        firsts.append(first if first is not None else whole)
        wholes.append(whole)
    first_s, whole_s = statistics.median(firsts), statistics.median(wholes)
    ratio = first_s / whole_s
    return Row(
        AREA, "first streamed word, gradio_client", "whole caption (same job)", ms(first_s),
        ms(whole_s), times(ratio), "≤ 0.25×", ratio <= 0.25,
        note=f"{len(firsts)} streamed captions of {TOKENS} tokens; medians of each. The vision "
        f"encoder alone takes {encoder_share:.0%} of a whole caption, and no word can come before it",
    )  # fmt: skip
