"""CLIP tab: with the same 10 labels every time, `zero_shot` runs only the image encoder (text
embeddings are cached): ≤ 1.15× a bare image-encoder forward with preprocessing, and ≥ 1.3× faster
than transformers' zero-shot-image-classification pipeline on the same model and labels.
Relevance maps for 5 labels at the default start layer ≤ 3× one zero-shot call on the same photo
and labels; through every layer, reported beside it."""

from __future__ import annotations

import torch

from bench.harness import Row, at_most, faster_by, interleave, ms, times
from bench.inputs import photo, photos
from bench.world import CLIP_B32

AREA = "clip"
NEEDS = {CLIP_B32}
LABELS = ("cat", "dog", "car", "truck", "coffee", "rocket", "person", "bird", "tree", "house")
TEMPLATE = "a photo of a {}."


def rows(ctx) -> list[Row]:
    from transformers import pipeline

    from vlmlab import clip
    from vlmlab.models import load_model

    loaded = load_model(CLIP_B32)
    processor = loaded.processor
    classifier = pipeline(
        "zero-shot-image-classification",
        model=loaded.model,
        tokenizer=processor.tokenizer,
        image_processor=processor.image_processor,
        device=loaded.device,
    )
    repeats = ctx.scaled(15)
    pictures = photos(2 * repeats + 4)  # every call a new photo: the image cache must miss

    def ours(i):
        return clip.zero_shot(pictures[i + 2], LABELS, templates=(TEMPLATE,))

    def ours_again(i):
        return ours(i + repeats)

    def encoder(i):
        pixels = processor.image_processor(images=pictures[i + 2], return_tensors="pt")
        with torch.inference_mode():
            return loaded.model.get_image_features(**loaded.to_device(dict(pixels)))

    def pipe(i):
        return classifier(
            pictures[i + repeats + 2], candidate_labels=list(LABELS), hypothesis_template=TEMPLATE
        )

    # Same answer as the pipeline, first: a speed comparison of different numbers means nothing.
    mine = dict(clip.zero_shot(pictures[0], LABELS, templates=(TEMPLATE,)))
    theirs = {
        r["label"]: r["score"]
        for r in classifier(
            pictures[0], candidate_labels=list(LABELS), hypothesis_template=TEMPLATE
        )
    }
    drift = max(abs(mine[label] - theirs[label]) for label in LABELS)
    tolerance = 1e-4 if loaded.dtype == torch.float32 else 1e-2  # float16 on a GPU
    assert drift < tolerance, f"zero_shot and the pipeline disagree by {drift}"

    bare = interleave(ours, encoder, repeats=repeats)
    against_pipeline = interleave(ours_again, pipe, repeats=repeats)
    what = "zero_shot, same 10 labels, new photo"
    return [*_zero_shot_rows(what, bare, against_pipeline, drift), *relevance_rows(ctx)]


FIVE = LABELS[:5]


def relevance_rows(ctx) -> list[Row]:
    """Relevance maps for 5 labels against one zero-shot call on the same photo, never seen
    before (neither side finds it in its cache: relevance keeps no image embeddings)."""
    from vlmlab import clip

    repeats = ctx.scaled(10)
    pictures = [photo(5_000 + i) for i in range(2 * repeats + 4)]  # unlike the rows above
    layers = clip.load_eager(CLIP_B32).model.config.vision_config.num_hidden_layers

    def zero_shot(i):
        return clip.zero_shot(pictures[i + 2], FIVE, templates=(TEMPLATE,))

    def maps(i):
        return clip.relevance_maps(pictures[i + 2], FIVE, templates=(TEMPLATE,))

    def zero_shot_again(i):
        return zero_shot(i + repeats)

    def every_layer(i):
        return clip.relevance_maps(pictures[i + repeats + 2], FIVE, templates=(TEMPLATE,),
                                   start_layer=1)  # fmt: skip

    last = interleave(maps, zero_shot, repeats=repeats)
    every = interleave(every_layer, zero_shot_again, repeats=repeats)
    what, peer = "relevance maps, 5 labels, new photo", "zero_shot, same photo and labels"
    return [
        at_most(AREA, f"{what}, last layer (default)", peer, last, 3.0,
                note=f"ViT-B/32: {layers - 1} blocks once without gradients, the last with "
                "them, batched over the 5 labels"),
        Row(AREA, f"{what}, all {layers} layers", peer, ms(every.ours), ms(every.peer),
            times(every.ratio), "report", None,
            note="start_layer=1: every block with gradients, batched over the labels"),
    ]  # fmt: skip


def _zero_shot_rows(what, bare, against_pipeline, drift) -> list[Row]:
    return [
        at_most(AREA, what, "preprocess + image encoder", bare, 1.15,
                note="ViT-B/32 224²; text embeddings come from the cache, images never do"),
        faster_by(AREA, what, "transformers pipeline", against_pipeline, 1.3,
                  note=f"zero-shot-image-classification pipeline on the same model; "
                  f"probabilities agree within {drift:.0e}"),
    ]  # fmt: skip
