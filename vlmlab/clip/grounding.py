"""Where in the photo each text is found: Chefer et al.'s relevance maps (ICCV 2021) for CLIP,
from the image's logit for each text back through the vision tower's attention. Part of
`vlmlab.clip` (its front door exports these), sharing its text encoder and caches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from vlmlab.cache import photo_fingerprint
from vlmlab.clip import (
    DEFAULT_MODEL,
    MAX_LABELS,
    RelevanceMaps,
    _classifier,
    _relevances,
    score_labels,
)
from vlmlab.clip.prompts import SLOT, parse_labels, parse_templates
from vlmlab.device import gpu
from vlmlab.errors import LabError
from vlmlab.grounding import MAX_MAPS, NOTE, as_grid, check_layer, chefer_relevance, no_attentions
from vlmlab.images import ImageSource, rgb_image
from vlmlab.models import get_spec, load_model
from vlmlab.vit import _as_seen  # the model's input as the picture it shows


def relevance(
    image: ImageSource,
    texts: str | Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    start_layer: int | None = None,
    pretrained: bool = True,
) -> np.ndarray:
    """Where in the photo each text is found: an array (len(texts), rows, cols) on the patch grid.

    Chefer et al.'s relevance (ICCV 2021), as in their CLIP notebook: the target is the image's
    logit for the text (logit scale × cosine); from vision layer `start_layer` (1-based; None:
    the last layer) to the last, Ā = mean over heads of (∂target/∂A ⊙ A)⁺ and R ← R + Ā·R, from
    R = I; the map is R's CLS row over the patch tokens. `texts` as they are (no template), one
    per line when given as one string, at most 100 (repeats count once).
    """
    texts = parse_labels(texts, what="text", max_labels=MAX_LABELS, commas=False)
    found = relevance_maps(
        image, texts, model=model, start_layer=start_layer, max_maps=MAX_LABELS,
        pretrained=pretrained,
    )  # fmt: skip
    return found.maps


def relevance_maps(
    image: ImageSource,
    labels: str | Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    templates: str | Sequence[str] = (SLOT,),
    start_layer: int | None = None,
    max_maps: int = MAX_MAPS,
    ranked: bool = False,
    pretrained: bool = True,
) -> RelevanceMaps:
    """A relevance map for each of the first `max_maps` labels (a note says how many were left
    out), with the photo as the model saw it and what each target was.

    With `templates` the target is the zero-shot logit itself: the image against the label's
    (ensembled) prompt embedding. The default takes each label as it is. `ranked`: the most
    likely labels first (zero-shot, up to 100 labels), else the order given.
    """
    check_relevance_family(model)
    labels = parse_labels(labels, max_labels=_MAX_ANY)  # any number: the maps are capped below
    if ranked and len(labels) <= MAX_LABELS:
        scores = score_labels(
            image, labels, model=model, templates=templates, pretrained=pretrained
        )
        labels = tuple(label for label, _ in scores.ranked())
    notes = [NOTE]
    if len(labels) > max_maps:
        which = "most likely" if ranked and len(labels) <= MAX_LABELS else "first"
        notes.append(
            f"Relevance maps are drawn for the {which} {max_maps} of your {len(labels):,} labels "
            "only" + ("." if which == "most likely" else "; put the labels you want to see first.")
        )
        labels = labels[:max_maps]
    return _relevance_on_device(
        rgb_image(image), labels, parse_templates(templates), model, start_layer, pretrained,
        tuple(notes),
    )  # fmt: skip


class NoRelevanceError(LabError):
    """Relevance maps follow CLIP's class token; a model without one (SigLIP) has none."""


def check_relevance_family(model: str) -> None:
    spec = get_spec(model, "clip")
    if spec.kind != "clip":
        raise NoRelevanceError(
            f"Relevance maps follow CLIP's class token, and {spec.title} has none (SigLIP pools "
            "its patches with attention), so the lab draws no maps for it."
        )


def load_eager(name: str = DEFAULT_MODEL, *, pretrained: bool = True, progress=None):
    """The CLIP model as relevance needs it: eager attention, so the attention probabilities
    come back to take gradients at them."""
    return load_model(
        name, topic="clip", attn_implementation="eager", pretrained=pretrained, progress=progress
    )


# ---------------------------------------------------------------------------------------------
# Relevance: the tower once without gradients, the followed blocks with them, batched over texts

_MAX_ANY = 1_000_000  # labels read for relevance maps (the text itself is bounded by clean_text)


@gpu
def _relevance_on_device(
    image: Image.Image,
    labels: tuple[str, ...],
    templates: tuple[str, ...],
    name: str,
    start_layer,
    pretrained: bool,
    notes: tuple[str, ...],
) -> RelevanceMaps:
    loaded = load_eager(name, pretrained=pretrained)
    layers = len(loaded.model.vision_model.encoder.layers)
    start = check_layer(start_layer, layers) or layers  # the notebook's default: the last layer
    key = (loaded.key, photo_fingerprint(image), labels, templates, start)
    return _relevances.get_or_compute(
        key, lambda: _relevance(loaded, image, labels, templates, start, notes)
    )


def _relevance(loaded, image, labels, templates, start: int, notes) -> RelevanceMaps:
    classifier = _classifier(loaded, labels, templates)  # (K, D) unit text embeddings
    pixels = loaded.processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
    vision, model = loaded.model.vision_model, loaded.model
    blocks = vision.encoder.layers
    patch = vision.config.patch_size
    rows, cols = pixels.shape[-2] // patch, pixels.shape[-1] // patch
    texts = classifier.weights.to(loaded.device, loaded.dtype)  # (K, D)
    with torch.no_grad():  # the layers before `start` need no gradients
        hidden = vision.pre_layrnorm(vision.embeddings(loaded.to_device(pixels)))  # (1, T, W)
        for block in blocks[: start - 1]:
            hidden = block(hidden, None)
    with torch.enable_grad():
        hidden = hidden.detach().repeat(len(texts), 1, 1).requires_grad_(True)  # (K, T, W)
        attentions = []
        for block in blocks[start - 1 :]:  # CLIPEncoderLayer.forward, keeping the attention
            attended, probabilities = block.self_attn(hidden_states=block.layer_norm1(hidden))
            if probabilities is None:
                raise no_attentions(loaded.spec.name)
            hidden = hidden + attended
            hidden = hidden + block.mlp(block.layer_norm2(hidden))
            attentions.append(probabilities)  # (K, heads, T, T)
        embeds = model.visual_projection(vision.post_layernorm(hidden[:, 0]))  # (K, D)
        embeds = embeds / embeds.norm(p=2, dim=-1, keepdim=True)
        logits = model.logit_scale.exp() * (embeds * texts).sum(dim=-1)  # (K,) row k: text k
        gradients = torch.autograd.grad(logits.sum(), attentions)  # rows are independent
    relevance = chefer_relevance([a.detach() for a in attentions], gradients)  # (K, T, T)
    maps = as_grid(relevance[:, 0, 1:], rows, cols)
    return RelevanceMaps(
        classifier.labels,
        maps,
        logits.detach().float().cpu().numpy(),
        _as_seen(pixels[0], loaded.processor.image_processor),
        start,
        len(blocks),
        templates,
        notes + classifier.notes,
    )
