"""Prompts for CLIP: label lists and templates typed by a user, checked on the server, and cut
to the text encoder's token limit (77 for the released models, read from the config) with a note.
Templates follow CLIP's "Prompt_Engineering_for_ImageNet" notebook."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vlmlab.errors import LabError
from vlmlab.text import split_items

if TYPE_CHECKING:
    from vlmlab.models import LoadedModel

DEFAULT_TEMPLATE = "a photo of a {}."
SLOT = "{}"  # where the label goes in a template

MAX_LABELS = 100
MAX_TEMPLATES = 20
MAX_TEXTS = 16  # captions in a similarity matrix
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


def fit_to_tokens(
    loaded: LoadedModel, labels: tuple[str, ...], templates: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Labels cut so every prompt fits the token limit (a note for each cut), de-duplicated again."""
    tokenizer = loaded.processor.tokenizer
    limit = token_limit(loaded)
    overhead = max(len(tokenizer(fill(t, "")).input_ids) for t in templates)  # specials + words
    budget = max(1, limit - overhead)
    try:
        encoded = tokenizer(
            list(labels), add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offset_mapping = encoded["offset_mapping"]
    except (NotImplementedError, KeyError):  # SentencePiece (SigLIP) gives no character offsets
        encoded = tokenizer(list(labels), add_special_tokens=False, verbose=False)
        offset_mapping = [None] * len(labels)
    kept: dict[str, str] = {}  # casefold -> label, in order
    notes = []
    for label, ids, offsets in zip(labels, encoded.input_ids, offset_mapping):
        if len(ids) > budget:
            if offsets is None:
                cut = tokenizer.decode(ids[:budget], skip_special_tokens=True).strip()
            else:
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
