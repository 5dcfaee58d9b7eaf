"""Two CLIP models, one photo: the lecture's LAION-5B slide live. OpenAI's CLIP learned from 400M
private pairs; OpenCLIP reproduced it on LAION-2B, open data. Same labels, same photo, side by side,
each with one sentence on how it was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vlmlab.clip import DEFAULT_TEMPLATE, SimilarityMatrix, ZeroShotResult, compare, score_labels
from vlmlab.errors import LabError
from vlmlab.images import ImageSource
from vlmlab.models import get_spec

OPENAI = (
    "OpenAI trained it on 400 million image–text pairs collected from the web (WIT); the data "
    "was never released, only the weights."
)
LAION = (
    "LAION and OpenCLIP trained it on LAION-2B, 2 billion English image–text pairs filtered from "
    "Common Crawl; data, code and weights are all open."
)
SIGLIP = (
    "Google trained it on WebLI (about 10 billion images with alt-texts, not released) with a "
    "sigmoid loss; the weights are open."
)
TRAINED_ON = {
    "openai/clip-vit-base-patch32": OPENAI,
    "openai/clip-vit-base-patch16": OPENAI,
    "openai/clip-vit-large-patch14": OPENAI,
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K": LAION,
}


def trained_on(model: str) -> str:
    """One sentence on the model's training data, its size and its openness."""
    name = get_spec(model, "clip").name
    if name in TRAINED_ON:
        return TRAINED_ON[name]
    if name.startswith("laion/"):
        return "LAION and OpenCLIP trained it on open LAION data; data, code and weights are open."
    if name.startswith("openai/"):
        return OPENAI
    if get_spec(name).kind == "siglip" and name.startswith("google/"):
        return SIGLIP
    return f"{name} was named by you: its model card on the Hugging Face Hub says how it learned."


@dataclass(frozen=True, eq=False)
class Column:
    """One model's side of a side-by-side view."""

    model: str
    title: str
    trained_on: str
    result: ZeroShotResult | SimilarityMatrix


def _pair(models: Sequence[str]) -> tuple[str, str]:
    if isinstance(models, str) or len(models) != 2:
        raise LabError("Give two CLIP models to compare side by side.")
    names = tuple(get_spec(model, "clip").name for model in models)
    if names[0] == names[1]:
        raise LabError("Pick two different CLIP models to compare side by side.")
    return names  # type: ignore[return-value]


def zero_shot_pair(
    image: ImageSource,
    labels: str | Sequence[str],
    models: Sequence[str],
    *,
    templates: str | Sequence[str] = (DEFAULT_TEMPLATE,),
    pretrained: bool = True,
) -> tuple[Column, Column]:
    """The same photo and labels through two CLIP models: each scored as it was trained."""
    columns = []
    for name in _pair(models):
        result = score_labels(
            image, labels, model=name, templates=templates, pretrained=pretrained
        )
        columns.append(Column(name, get_spec(name).title, trained_on(name), result))
    return tuple(columns)  # type: ignore[return-value]


def similarity_pair(
    images: Sequence[ImageSource],
    texts: str | Sequence[str],
    models: Sequence[str],
    *,
    pretrained: bool = True,
) -> tuple[Column, Column]:
    """The same images and texts through two CLIP models: two similarity matrices."""
    columns = []
    for name in _pair(models):
        matrix = compare(images, texts, model=name, pretrained=pretrained)
        columns.append(Column(name, get_spec(name).title, trained_on(name), matrix))
    return tuple(columns)  # type: ignore[return-value]
