"""CLIP (Radford et al., 2021): the image–text similarity matrix of contrastive pretraining, and a
zero-shot classifier built from label text ("a photo of a {}.") with CLIP's prompt ensembling;
where in the photo each text is found (relevance maps of Chefer, Gur & Wolf, ICCV 2021).

Text embeddings are cached per (model, template, label) and image embeddings per (model, pixels),
so a repeated label set runs only the image encoder, and a repeated photo runs neither.
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vlmlab.cache import LRUCache, fingerprint
from vlmlab.clip.prompts import (
    DEFAULT_LABELS,
    DEFAULT_TEMPLATE,
    MAX_LABELS,
    MAX_TEMPLATES,
    MAX_TEXTS,
    SAMPLE_CAPTIONS,
    SLOT,
    TEMPLATE_SETS,
    fill,
    fit_to_tokens,
    parse_labels,
    parse_templates,
    token_limit,
)
from vlmlab.device import gpu
from vlmlab.errors import LabError
from vlmlab.grounding import MAX_MAPS
from vlmlab.images import ImageSource, load_image
from vlmlab.models import LoadedModel, default_model, load_model

DEFAULT_MODEL = default_model("clip")
SOFTMAX, SIGMOID = "softmax", "sigmoid"  # how a family turns logits into scores
SIGMOID_NOTE = (
    "SigLIP scores each label on its own with a sigmoid, as it was trained: the scores need "
    "not add up to 100%, and every label may be unlikely."
)
MAX_IMAGES = 16  # images in a similarity matrix

__all__ = [  # the engine's API; prompt helpers come from vlmlab.clip.prompts
    "DEFAULT_LABELS",
    "DEFAULT_MODEL",
    "DEFAULT_TEMPLATE",
    "MAX_IMAGES",
    "MAX_LABELS",
    "MAX_TEMPLATES",
    "MAX_MAPS",
    "MAX_TEXTS",
    "SAMPLE_CAPTIONS",
    "SLOT",
    "TEMPLATE_SETS",
    "SIGMOID",
    "SOFTMAX",
    "NoRelevanceError",
    "SimilarityMatrix",
    "ZeroShotRequest",
    "ZeroShotResult",
    "check_relevance_family",
    "clear_caches",
    "compare",
    "fill",
    "imagenet_classes",
    "load_eager",
    "parse_labels",
    "parse_templates",
    "relevance",
    "relevance_maps",
    "score_labels",
    "similarity",
    "token_limit",
    "zero_shot",
    "zero_shot_batch",
    "zero_shot_imagenet",
]

_TEXT_BATCH = 256  # prompts per text-encoder forward
_IMAGE_BATCH = 32  # images per image-encoder forward

# Compute once, look many times. Keys start with `loaded.key`.
_text_embeddings = LRUCache(maxsize=8_192)  # (model, template, label) -> (D,) unit vector, CPU
_image_embeddings = LRUCache(maxsize=256)  # (model, pixel digest) -> (D,) unit vector, CPU
_classifiers = LRUCache(maxsize=32)  # (model, labels, templates) -> _Classifier
_relevances = LRUCache(maxsize=32)  # (model, photo, labels, templates, start) -> RelevanceMaps


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, eq=False)
class ZeroShotResult:
    """One image scored against label prompts the way its model was trained: CLIP's softmax of
    logit_scale × cosine over the labels, or SigLIP's sigmoid of each label on its own."""

    labels: tuple[str, ...]  # in the order given (cleaned, cut at the token limit)
    probabilities: np.ndarray  # (L,) sums to 1 (softmax); each in 0–1 on its own (sigmoid)
    cosines: np.ndarray  # (L,) cosine of the image and each label's (ensembled) text embedding
    logit_scale: float  # CLIP's learned temperature exp(t), 100 for the trained models
    templates: tuple[str, ...]
    notes: tuple[str, ...] = ()  # things the user should know (labels cut at 77 tokens…)
    scoring: str = SOFTMAX  # SOFTMAX over labels (CLIP) or SIGMOID per label (SigLIP)
    logit_bias: float = 0.0  # SigLIP's learned bias; CLIP has none

    @property
    def logits(self) -> np.ndarray:  # (L,) what the softmax or sigmoid sees
        return self.cosines * self.logit_scale + self.logit_bias

    def ranked(self, top_k: int | None = None) -> list[tuple[str, float]]:
        """(label, probability) pairs, most likely first."""
        order = np.argsort(-self.probabilities, kind="stable")[:top_k]
        return [(self.labels[i], float(self.probabilities[i])) for i in order]

    def table(self, top_k: int | None = None) -> list[tuple[str, float, float, float]]:
        """(label, probability, cosine, logit) rows, most likely first."""
        order = np.argsort(-self.probabilities, kind="stable")[:top_k]
        logits = self.logits
        return [
            (self.labels[i], float(self.probabilities[i]), float(self.cosines[i]), float(logits[i]))
            for i in order
        ]


@dataclass(frozen=True, eq=False)
class SimilarityMatrix:
    """Every image against every text: the N×M matrix of CLIP's contrastive pretraining."""

    cosines: np.ndarray  # (N images, M texts)
    texts: tuple[str, ...]
    logit_scale: float
    notes: tuple[str, ...] = ()
    scoring: str = SOFTMAX
    logit_bias: float = 0.0

    def probabilities(self) -> np.ndarray:
        """Row-wise softmax of logit_scale × cosine: for each image, which text is its caption
        (SigLIP: each pair's own sigmoid, as it was trained)."""
        logits = self.cosines * self.logit_scale + self.logit_bias
        if self.scoring == SIGMOID:
            return 1.0 / (1.0 + np.exp(-logits))
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


@dataclass(frozen=True, eq=False)
class RelevanceMaps:
    """Where in the photo each text is found: one relevance map per text, on the patch grid."""

    texts: tuple[str, ...]  # the labels (or texts) the maps are for, in order
    maps: np.ndarray  # (K, rows, cols) ≥ 0: the CLS row of R over the patch tokens
    logits: np.ndarray  # (K,) each target: logit_scale × cosine of the image and that text
    image: Image.Image  # the photo as the model saw it (resized, centre-cropped)
    start_layer: int  # 1-based: the first vision layer whose attention R follows
    layers: int  # the vision tower's depth
    templates: tuple[str, ...] = (SLOT,)
    notes: tuple[str, ...] = ()  # the honest label first, then caps and cuts

    @property
    def grid(self) -> tuple[int, int]:
        return self.maps.shape[1], self.maps.shape[2]


@dataclass(frozen=True, eq=False)
class ZeroShotRequest:
    """One caller's question for `zero_shot_batch`; plain values only (it crosses processes)."""

    image: Image.Image
    labels: str | Sequence[str]
    model: str = DEFAULT_MODEL
    templates: str | Sequence[str] = (DEFAULT_TEMPLATE,)
    pretrained: bool = True


# ---------------------------------------------------------------------------------------------
# Public API


def zero_shot(
    image: ImageSource,
    labels: str | Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    templates: str | Sequence[str] = (DEFAULT_TEMPLATE,),
    pretrained: bool = True,
) -> list[tuple[str, float]]:
    """CLIP's zero-shot classifier: (label, probability) pairs, most likely first, summing to 1.

    `labels`: a list, or text with one label per line or comma-separated (1–100 of them).
    `templates`: prompts with {} where the label goes; several are ensembled as in CLIP.
    """
    return score_labels(
        image, labels, model=model, templates=templates, pretrained=pretrained
    ).ranked()


def score_labels(
    image: ImageSource,
    labels: str | Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    templates: str | Sequence[str] = (DEFAULT_TEMPLATE,),
    pretrained: bool = True,
) -> ZeroShotResult:
    """Like `zero_shot`, with the cosines, the logit scale and any notes beside the probabilities."""
    request = ZeroShotRequest(load_image(image), labels, model, templates, pretrained)
    (result,) = zero_shot_batch([request])
    if isinstance(result, LabError):
        raise result
    return result


@gpu
def zero_shot_batch(requests: Sequence[ZeroShotRequest]) -> list[ZeroShotResult | LabError]:
    """Many callers at once (a lecture hall): one image-encoder pass per model for all images.

    Returns each caller's own result, in order. A bad request comes back as its `LabError`, in
    its place, instead of failing its neighbours.
    """
    results: list[ZeroShotResult | LabError | None] = [None] * len(requests)
    groups: dict[tuple, list[tuple[int, LoadedModel, _Classifier]]] = defaultdict(list)
    for index, request in enumerate(requests):
        try:
            loaded = _load(request.model, request.pretrained)
            labels = parse_labels(request.labels)
            classifier = _classifier(loaded, labels, parse_templates(request.templates))
            groups[loaded.key].append((index, loaded, classifier))
        except LabError as error:
            results[index] = error
    for members in groups.values():
        loaded = members[0][1]
        try:
            images = _embed_images(loaded, [requests[index].image for index, _, _ in members])
        except LabError as error:
            for index, _, _ in members:
                results[index] = error
            continue
        for row, (index, _, classifier) in enumerate(members):
            results[index] = _score(loaded, images[row : row + 1], classifier)[0]
    return results  # type: ignore[return-value]


@gpu
def zero_shot_imagenet(
    images: Sequence[ImageSource],
    *,
    model: str = DEFAULT_MODEL,
    templates: str | Sequence[str] = (DEFAULT_TEMPLATE,),
    pretrained: bool = True,
) -> list[ZeroShotResult]:
    """CLIP as an ImageNet classifier: zero-shot over the 1000 class names (text embedded once)."""
    loaded = _load(model, pretrained)
    labels = parse_labels(imagenet_classes(), max_labels=len(imagenet_classes()))
    classifier = _classifier(loaded, labels, parse_templates(templates))
    pictures = [load_image(image) for image in images]
    return _score(loaded, _embed_images(loaded, pictures), classifier)


@gpu
def compare(
    images: Sequence[ImageSource],
    texts: str | Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    pretrained: bool = True,
) -> SimilarityMatrix:
    """Every image against every text (captions, one per line): cosines and CLIP's logit scale."""
    if isinstance(images, (str, bytes, os.PathLike, Image.Image, np.ndarray)):
        images = [images]  # one image is a list of one
    images = list(images)
    if not images:
        raise LabError("Please give at least one image to compare with the texts.")
    if len(images) > MAX_IMAGES:
        raise LabError(
            f"Please compare at most {MAX_IMAGES} images at a time; you gave {len(images)}."
        )
    loaded = _load(model, pretrained)
    captions = parse_labels(texts, what="text", max_labels=MAX_TEXTS, commas=False)
    classifier = _classifier(loaded, captions, (SLOT,))  # each text as it is, no template
    pictures = [load_image(image) for image in images]
    image_embeds = _embed_images(loaded, pictures)  # (N, D)
    cosines = (image_embeds @ classifier.weights.T).numpy()  # (N, M)
    scoring, bias = scoring_of(loaded), _logit_bias(loaded)
    return SimilarityMatrix(
        cosines, classifier.labels, _logit_scale(loaded), classifier.notes, scoring, bias
    )


def similarity(
    images: Sequence[ImageSource],
    texts: str | Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    pretrained: bool = True,
) -> np.ndarray:
    """Cosine similarities of CLIP's image and text embeddings, shape (len(images), len(texts))."""
    return compare(images, texts, model=model, pretrained=pretrained).cosines


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet class names, from torchvision's weights metadata (no download)."""
    from torchvision.models import get_model_weights

    return tuple(get_model_weights("resnet50").IMAGENET1K_V1.meta["categories"])


def clear_caches(*, texts: bool = True, images: bool = True) -> None:
    """Forget cached embeddings and relevance maps (for benchmarks that time a cold encoder)."""
    _relevances.clear()
    if texts:
        _text_embeddings.clear()
        _classifiers.clear()
    if images:
        _image_embeddings.clear()


# ---------------------------------------------------------------------------------------------
# Encoders: preprocess -> forward -> postprocess, cached


@dataclass(frozen=True, eq=False)
class _Classifier:
    """A zero-shot classifier built from label text: one unit vector per label."""

    labels: tuple[str, ...]  # after the token cut
    notes: tuple[str, ...]
    templates: tuple[str, ...]
    weights: torch.Tensor  # (L, D) float32, CPU


def _load(name: str, pretrained: bool) -> LoadedModel:
    return load_model(name, topic="clip", pretrained=pretrained)


def _logit_scale(loaded: LoadedModel) -> float:
    with torch.inference_mode():
        return float(loaded.model.logit_scale.float().exp().item())


def scoring_of(loaded: LoadedModel) -> str:
    """How the model was trained to score pairs: SigLIP's sigmoid per pair, else CLIP's softmax."""
    return SIGMOID if loaded.spec.kind == "siglip" else SOFTMAX


def _logit_bias(loaded: LoadedModel) -> float:
    bias = getattr(loaded.model, "logit_bias", None)  # SigLIP learns one; CLIP has none
    if bias is None:
        return 0.0
    with torch.inference_mode():
        return float(bias.float().item())


def _classifier(
    loaded: LoadedModel, labels: tuple[str, ...], templates: tuple[str, ...]
) -> _Classifier:
    key = (loaded.key, labels, templates)
    return _classifiers.get_or_compute(key, lambda: _build_classifier(loaded, labels, templates))


def _build_classifier(
    loaded: LoadedModel, labels: tuple[str, ...], templates: tuple[str, ...]
) -> _Classifier:
    labels, notes = fit_to_tokens(loaded, labels, templates)
    model_key = loaded.key
    keys = [(model_key, template, label) for template in templates for label in labels]
    missing = list(dict.fromkeys(key for key in keys if key not in _text_embeddings))
    fresh = dict(zip(missing, _encode_texts(loaded, [fill(t, label) for _, t, label in missing])))
    vectors = [
        fresh[key]
        if key in fresh
        else _text_embeddings.get_or_compute(
            key, lambda key=key: _encode_texts(loaded, [fill(key[1], key[2])])[0]
        )
        for key in keys
    ]
    for key, vector in fresh.items():
        _text_embeddings.get_or_compute(key, lambda vector=vector: vector)
    stacked = torch.stack(vectors).view(len(templates), len(labels), -1)  # (T, L, D)
    # CLIP's prompt ensembling: the mean of unit text embeddings over templates, normalised again.
    weights = _unit(stacked.mean(dim=0)) if len(templates) > 1 else stacked[0]
    return _Classifier(labels, notes, templates, weights)


def _encode_texts(loaded: LoadedModel, prompts: list[str]) -> torch.Tensor:
    """Unit text embeddings, (len(prompts), D) float32 on the CPU."""
    if not prompts:
        return torch.empty(0)
    tokenizer, limit = loaded.processor.tokenizer, token_limit(loaded)
    chunks = []
    for start in range(0, len(prompts), _TEXT_BATCH):
        tokens = tokenizer(
            prompts[start : start + _TEXT_BATCH],
            # SigLIP was trained on texts padded to max_length; CLIP masks its padding.
            padding="max_length" if scoring_of(loaded) == SIGMOID else True,
            truncation=True,
            max_length=limit,
            return_tensors="pt",
        )
        with torch.inference_mode():
            features = loaded.model.get_text_features(**loaded.to_device(dict(tokens)))
        chunks.append(_unit(features.pooler_output.float()).cpu())  # (n, D)
    return torch.cat(chunks)


def _embed_images(loaded: LoadedModel, images: list[Image.Image]) -> torch.Tensor:
    """Unit image embeddings, (len(images), D) float32 on the CPU; one forward for the misses."""
    pixels = loaded.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    model_key = loaded.key
    keys = [(model_key, fingerprint(p.numpy())) for p in pixels]  # pixels: (B, 3, H, W)
    missing = {key: i for i, key in enumerate(keys) if key not in _image_embeddings}
    fresh: dict[tuple, torch.Tensor] = {}
    rows = list(missing.values())
    for start in range(0, len(rows), _IMAGE_BATCH):
        chunk = rows[start : start + _IMAGE_BATCH]
        batch = loaded.to_device(pixels[chunk])
        with torch.inference_mode():
            features = loaded.model.get_image_features(pixel_values=batch).pooler_output
        for i, vector in zip(chunk, _unit(features.float()).cpu()):  # (n, D)
            fresh[keys[i]] = vector
    vectors = []
    for i, key in enumerate(keys):
        if key in fresh:
            vectors.append(_image_embeddings.get_or_compute(key, lambda v=fresh[key]: v))
        else:  # cached a moment ago (or evicted since: compute it alone)
            vectors.append(
                _image_embeddings.get_or_compute(
                    key, lambda i=i: _forward_one(loaded, pixels[i : i + 1])
                )
            )
    return torch.stack(vectors)


def _forward_one(loaded: LoadedModel, pixels: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        features = loaded.model.get_image_features(pixel_values=loaded.to_device(pixels))
    return _unit(features.pooler_output.float()).cpu()[0]


def _score(
    loaded: LoadedModel, image_embeds: torch.Tensor, classifier: _Classifier
) -> list[ZeroShotResult]:
    """Softmax over labels of logit_scale × cosine, exactly CLIP's logits_per_image; SigLIP:
    sigmoid(logit_scale × cosine + logit_bias) per label, exactly its logits_per_image."""
    scale, bias, scoring = _logit_scale(loaded), _logit_bias(loaded), scoring_of(loaded)
    cosines = image_embeds @ classifier.weights.T  # (B, L)
    logits = cosines * scale + bias
    probabilities = logits.sigmoid() if scoring == SIGMOID else logits.softmax(dim=-1)
    notes = classifier.notes
    if scoring == SIGMOID:
        notes += (SIGMOID_NOTE,)
    return [
        ZeroShotResult(
            classifier.labels,
            probabilities[row].numpy(),
            cosines[row].numpy(),
            scale,
            classifier.templates,
            notes,
            scoring,
            bias,
        )
        for row in range(len(cosines))
    ]


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(p=2, dim=-1, keepdim=True)


# The front door also shows where in the photo each text is found (vlmlab/clip/grounding.py).
from vlmlab.clip.grounding import (  # noqa: E402  (it builds on the encoders above)
    NoRelevanceError,
    check_relevance_family,
    load_eager,
    relevance,
    relevance_maps,
)
