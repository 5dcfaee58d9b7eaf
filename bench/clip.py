"""CLIP tab: with the same 10 labels every time, `zero_shot` runs only the image encoder (text
embeddings are cached): ≤ 1.15× a bare image-encoder forward with preprocessing, and ≥ 1.3× faster
than transformers' zero-shot-image-classification pipeline on the same model and labels."""

from __future__ import annotations

import torch

from bench.harness import Row, at_most, faster_by, interleave
from bench.inputs import photos
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
    return [
        at_most(AREA, what, "preprocess + image encoder", bare, 1.15,
                note="ViT-B/32 224²; text embeddings come from the cache, images never do"),
        faster_by(AREA, what, "transformers pipeline", against_pipeline, 1.3,
                  note=f"zero-shot-image-classification pipeline on the same model; "
                  f"probabilities agree within {drift:.0e}"),
    ]  # fmt: skip
