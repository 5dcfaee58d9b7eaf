"""CLIP (Radford et al., 2021): the image–text similarity matrix of contrastive pretraining, and a
zero-shot classifier built from label text ("a photo of a {}.") with CLIP's prompt ensembling.

Text embeddings are cached per (model, template, label) and image embeddings per (model, pixels),
so a repeated label set runs only the image encoder, and a repeated photo runs neither.
"""

from __future__ import annotations

import functools
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from vlmlab.cache import LRUCache, fingerprint
from vlmlab.device import gpu
from vlmlab.errors import LabError
from vlmlab.images import ImageSource, load_image
from vlmlab.models import LoadedModel, default_model, load_model
from vlmlab.text import split_items

DEFAULT_MODEL = default_model("clip")
DEFAULT_TEMPLATE = "a photo of a {}."
SLOT = "{}"  # where the label goes in a template

MAX_LABELS = 100
MAX_TEMPLATES = 20
MAX_TEXTS = 16  # captions in a similarity matrix
MAX_IMAGES = 16
MAX_LABEL_CHARS = 2_000  # far beyond 77 tokens; the token cut below is the real limit

# A few of the 80 templates CLIP used for ImageNet ("Prompt_Engineering_for_ImageNet.ipynb").
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "a photo of a {}.": (DEFAULT_TEMPLATE,),
    "no template: the label alone": ("{}",),
    "CLIP's 7 best ImageNet templates": (
        "itap of a {}.",
        "a bad photo of the {}.",
        "a origami {}.",
        "a photo of the large {}.",
        "a {} in a video game.",
        "art of the {}.",
        "a photo of the small {}.",
    ),
    "photos, good and bad": (
        "a photo of a {}.",
        "a bad photo of a {}.",
        "a blurry photo of a {}.",
        "a low resolution photo of a {}.",
        "a black and white photo of a {}.",
        "a close-up photo of a {}.",
        "a dark photo of a {}.",
        "a bright photo of a {}.",
    ),
    "sketches and renditions": (
        "a sketch of a {}.",
        "a drawing of a {}.",
        "a doodle of a {}.",
        "a painting of a {}.",
        "a rendition of a {}.",
        "a cartoon {}.",
        "art of a {}.",
    ),
}

DEFAULT_LABELS = "cat\ndog\ntiger\ncup of coffee\nrocket\nastronaut"
SAMPLE_CAPTIONS = {  # a caption for each of the lab's sample photos: the matrix's true pairs
    "chelsea": "a photo of a cat",
    "astronaut": "an astronaut in a spacesuit in front of a flag",
    "coffee": "a cup of coffee on a saucer",
    "rocket": "a rocket on its launch pad",
    "camera": "a black and white photo of a man with a camera",
    "grace_hopper": "a portrait of a woman in a navy uniform",
}

_TEXT_BATCH = 256  # prompts per text-encoder forward
_IMAGE_BATCH = 32  # images per image-encoder forward

# Compute once, look many times. Keys start with `_model_key(loaded)`.
_text_embeddings = LRUCache(maxsize=8_192)  # (model, template, label) -> (D,) unit vector, CPU
_image_embeddings = LRUCache(maxsize=256)  # (model, pixel digest) -> (D,) unit vector, CPU
_classifiers = LRUCache(maxsize=32)  # (model, labels, templates) -> _Classifier


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, eq=False)
class ZeroShotResult:
    """One image scored against label prompts: softmax(logit_scale × cosine) over the labels."""

    labels: tuple[str, ...]  # in the order given (cleaned, cut at the token limit)
    probabilities: np.ndarray  # (L,) sums to 1
    cosines: np.ndarray  # (L,) cosine of the image and each label's (ensembled) text embedding
    logit_scale: float  # CLIP's learned temperature exp(t), 100 for the trained models
    templates: tuple[str, ...]
    notes: tuple[str, ...] = ()  # things the user should know (labels cut at 77 tokens…)

    @property
    def logits(self) -> np.ndarray:  # (L,) what the softmax sees
        return self.cosines * self.logit_scale

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

    def probabilities(self) -> np.ndarray:
        """Row-wise softmax of logit_scale × cosine: for each image, which text is its caption."""
        logits = self.cosines * self.logit_scale
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


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
            groups[_model_key(loaded)].append((index, loaded, classifier))
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
        raise LabError(f"Please compare at most {MAX_IMAGES} images at a time; you gave {len(images)}.")
    loaded = _load(model, pretrained)
    captions = parse_labels(texts, what="text", max_labels=MAX_TEXTS, commas=False)
    classifier = _classifier(loaded, captions, (SLOT,))  # each text as it is, no template
    pictures = [load_image(image) for image in images]
    image_embeds = _embed_images(loaded, pictures)  # (N, D)
    cosines = (image_embeds @ classifier.weights.T).numpy()  # (N, M)
    return SimilarityMatrix(cosines, classifier.labels, _logit_scale(loaded), classifier.notes)


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
    """Forget cached embeddings (for benchmarks that time a cold encoder)."""
    if texts:
        _text_embeddings.clear()
        _classifiers.clear()
    if images:
        _image_embeddings.clear()


# ---------------------------------------------------------------------------------------------
# Labels and templates, checked on the server


def parse_labels(
    labels: str | Sequence[str],
    *,
    what: str = "label",
    max_labels: int = MAX_LABELS,
    commas: bool = True,
) -> tuple[str, ...]:
    """Labels typed one per line or comma-separated (or a list): stripped, de-duplicated, 1–max."""
    if not isinstance(labels, str):
        if not isinstance(labels, Sequence) or not all(isinstance(item, str) for item in labels):
            raise LabError(f"The {what}s must be text, or a list of texts.")
        labels, commas = "\n".join(" ".join(item.split()) for item in labels), False
    items = split_items(
        labels, what=what, max_items=max_labels, commas=commas, max_chars=MAX_LABEL_CHARS
    )
    return tuple(items)


_ANY_SLOT = re.compile(r"\{[^{}\s]{0,20}\}")  # {}, {label}, {object} all mark the slot


def parse_templates(templates: str | Sequence[str]) -> tuple[str, ...]:
    """Prompt templates, one per line, each with one {} where the label goes."""
    if not isinstance(templates, str):
        if not isinstance(templates, Sequence) or not all(isinstance(t, str) for t in templates):
            raise LabError("The templates must be text, or a list of texts.")
        templates = "\n".join(" ".join(t.split()) for t in templates)
    items = split_items(
        templates, what="template", max_items=MAX_TEMPLATES, commas=False, max_chars=300
    )
    parsed = []
    for item in items:
        template = _ANY_SLOT.sub(SLOT, item)
        if template.count(SLOT) != 1:
            raise LabError(
                f"Each template needs exactly one {{}} where the label goes, like "
                f"“a photo of a {{}}.” — “{_short(item)}” has {template.count(SLOT)}."
            )
        parsed.append(template)
    return tuple(dict.fromkeys(parsed))


def fill(template: str, label: str) -> str:
    """The prompt for one label (plain replacement: user text never reaches str.format)."""
    return template.replace(SLOT, label)


def token_limit(loaded: LoadedModel) -> int:
    """How many tokens CLIP's text encoder reads (77 for the released models), from its config."""
    positions = loaded.model.config.text_config.max_position_embeddings
    tokenizer = getattr(loaded.processor.tokenizer, "model_max_length", positions)
    return min(positions, tokenizer)


def _fit_to_tokens(
    loaded: LoadedModel, labels: tuple[str, ...], templates: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Labels cut so every prompt fits CLIP's token limit, with a note for each label cut."""
    tokenizer = loaded.processor.tokenizer
    limit = token_limit(loaded)
    overhead = max(len(tokenizer(fill(t, "")).input_ids) for t in templates)  # specials + words
    budget = max(1, limit - overhead)
    encoded = tokenizer(
        list(labels), add_special_tokens=False, return_offsets_mapping=True, verbose=False
    )
    kept: dict[str, str] = {}  # casefold -> label, in order
    notes = []
    for label, ids, offsets in zip(labels, encoded.input_ids, encoded.offset_mapping):
        if len(ids) > budget:
            end = offsets[budget - 1][1]
            if offsets[budget][0] < end:  # a character spread over several tokens goes whole
                end = offsets[budget - 1][0]
            cut = label[:end].rstrip() or label[: offsets[0][1]]
            notes.append(
                f"“{_short(label)}” is {len(ids)} tokens long, but CLIP reads at most {limit} "
                f"tokens per prompt: only “{_short(cut, 60)}” was used."
            )
            label = cut
        kept.setdefault(label.casefold(), label)
    return tuple(kept.values()), tuple(notes)


def _short(text: str, size: int = 40) -> str:
    return text if len(text) <= size else text[: size - 1].rstrip() + "…"


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


def _model_key(loaded: LoadedModel) -> tuple:
    return (loaded.spec.name, str(loaded.device), loaded.pretrained)


def _logit_scale(loaded: LoadedModel) -> float:
    with torch.inference_mode():
        return float(loaded.model.logit_scale.float().exp().item())


def _classifier(
    loaded: LoadedModel, labels: tuple[str, ...], templates: tuple[str, ...]
) -> _Classifier:
    key = (_model_key(loaded), labels, templates)
    return _classifiers.get_or_compute(key, lambda: _build_classifier(loaded, labels, templates))


def _build_classifier(
    loaded: LoadedModel, labels: tuple[str, ...], templates: tuple[str, ...]
) -> _Classifier:
    labels, notes = _fit_to_tokens(loaded, labels, templates)
    model_key = _model_key(loaded)
    keys = [(model_key, template, label) for template in templates for label in labels]
    missing = list(dict.fromkeys(key for key in keys if key not in _text_embeddings))
    fresh = dict(zip(missing, _encode_texts(loaded, [fill(t, label) for _, t, label in missing])))
    vectors = [
        fresh[key] if key in fresh else _text_embeddings.get_or_compute(
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
            padding=True,
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
    model_key = _model_key(loaded)
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
            vectors.append(_image_embeddings.get_or_compute(key, lambda i=i: _forward_one(
                loaded, pixels[i : i + 1]
            )))
    return torch.stack(vectors)


def _forward_one(loaded: LoadedModel, pixels: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        features = loaded.model.get_image_features(pixel_values=loaded.to_device(pixels))
    return _unit(features.pooler_output.float()).cpu()[0]


def _score(
    loaded: LoadedModel, image_embeds: torch.Tensor, classifier: _Classifier
) -> list[ZeroShotResult]:
    """Softmax over labels of logit_scale × cosine, exactly CLIP's logits_per_image."""
    scale = _logit_scale(loaded)
    cosines = image_embeds @ classifier.weights.T  # (B, L)
    probabilities = (cosines * scale).softmax(dim=-1)
    return [
        ZeroShotResult(
            classifier.labels,
            probabilities[row].numpy(),
            cosines[row].numpy(),
            scale,
            classifier.templates,
            classifier.notes,
        )
        for row in range(len(cosines))
    ]


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(p=2, dim=-1, keepdim=True)
