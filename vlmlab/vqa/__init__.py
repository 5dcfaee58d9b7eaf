"""Visual question answering: "Is this truck considered vintage?" — with the model's confidence.

ViLT (Kim et al., 2021) picks from a fixed answer list, scoring every answer with its own
sigmoid; BLIP (Li et al., 2022) writes its answer token by token, and its number is that
answer's probability. Where it looked: for ViLT the relevance of Chefer et al. (ICCV 2021) of the
chosen answer's score over the image tokens; for BLIP its question encoder's cross-attention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from vlmlab.captioning import (
    cross_attention,
    model_view,
    patch_grid,
    read_with_photo,
    text_limit,
)
from vlmlab.checks import whole_number
from vlmlab.device import gpu
from vlmlab.errors import LabError
from vlmlab.grounding import NOTE, as_grid, chefer_relevance, no_attentions
from vlmlab.images import ImageSource, load_image
from vlmlab.models import LoadedModel, default_model, get_spec, load_model
from vlmlab.text import clean_text, split_items

DEFAULT_MODEL = default_model("vqa")
MAX_QUESTIONS = 10
MAX_TOP_K = 10
MAX_CHARS = 500  # per question: far more than a model reads (its notes say where it stopped)
ANSWER_TOKENS = 10  # BLIP's answers are a word or three ("yes", "two", "a red truck")
EXAMPLE_QUESTIONS = (
    "What animal is this?\nWhat color is it?\nIs it sleeping?\nHow many cats are there?"
)


@dataclass(frozen=True)
class Answers:
    """One question and the model's answers to it, best first."""

    question: str  # as the model read it (cut if it was too long)
    answers: tuple[tuple[str, float], ...]  # (answer, score)
    note: str = ""  # set when the question was cut


@dataclass(frozen=True)
class AnswerSheet:
    """Every question of one request about one photo, and what the numbers mean."""

    model: str
    items: tuple[Answers, ...]
    meaning: str  # one sentence on what a score is, for the screen
    generative: bool  # True: BLIP writes one answer; False: ViLT ranks its answer list

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(item.note for item in self.items if item.note)


@dataclass(frozen=True, eq=False)
class AnswerGrounding:
    """Where in the photo the model looked to answer one question."""

    model: str
    question: str  # as the model read it
    answer: str  # the answer the map is for (ViLT: the chosen one; BLIP: the one it wrote)
    score: float  # its score, as the answer bars show it
    map: np.ndarray  # (rows, cols) ≥ 0: ViLT's relevance, or BLIP's mean over the words
    words: tuple[str, ...] = ()  # BLIP: the question's tokens (special tokens left out)
    word_maps: np.ndarray | None = None  # BLIP: (words, rows, cols), one per question token
    method: str = ""  # one sentence: what the map is
    image: Image.Image | None = None  # the photo as the model saw it
    notes: tuple[str, ...] = (NOTE,)


def ground_answer(
    image: ImageSource,
    question: str,
    *,
    model: str = DEFAULT_MODEL,
    answer: str | None = None,
    pretrained: bool = True,
) -> AnswerGrounding:
    """Where the model looked to answer `question`.

    ViLT (one stream of text and image tokens): the relevance of Chefer et al. of the chosen
    answer's score (its logit; `answer` names one of ViLT's answers, None: the top one) over
    the image tokens, through all layers, from the [CLS] token its answer head reads. BLIP: the
    question encoder's cross-attention to the image patches, per question word and in the mean
    (mean over heads and layers); `answer` is not used, the map is the question's.
    """
    text = " ".join(clean_text(question, what="question").split())
    if not text:
        raise LabError("Please type a question about the photo.")
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS].rstrip()
    if answer is not None and not isinstance(answer, str):
        raise LabError("The answer must be text: one of the model's answers.")
    name = get_spec(model or DEFAULT_MODEL, "vqa").name
    photo = image.convert("RGB") if isinstance(image, Image.Image) else load_image(image)
    chosen = " ".join(clean_text(answer, what="answer").split()) if answer else None
    return _ground_on_device(photo, text, name, chosen, pretrained)


def ground_answers(
    image: ImageSource,
    questions: str | Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    pretrained: bool = True,
) -> list[AnswerGrounding]:
    """`ground_answer` for up to 10 questions (text: one per line), each for its top answer."""
    asked = _questions(questions)
    name = get_spec(model or DEFAULT_MODEL, "vqa").name
    photo = image.convert("RGB") if isinstance(image, Image.Image) else load_image(image)
    return [_ground_on_device(photo, q, name, None, pretrained) for q in asked]


def answer(
    image: ImageSource,
    question: str,
    *,
    model: str = DEFAULT_MODEL,
    top_k: int = 5,
    pretrained: bool = True,
) -> list[tuple[str, float]]:
    """The model's answers to one question about `image`, best first.

    ViLT: its `top_k` best answers, each with its own sigmoid score (they need not sum to 1).
    BLIP: the answer it generates, with the probability of that whole answer.
    """
    text = " ".join(clean_text(question, what="question").split())
    if not text:
        raise LabError("Please type a question about the photo.")
    sheet = answer_questions(image, [text], model=model, top_k=top_k, pretrained=pretrained)
    return list(sheet.items[0].answers)


def answer_questions(
    image: ImageSource,
    questions: str | Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    top_k: int = 5,
    pretrained: bool = True,
) -> AnswerSheet:
    """Up to 10 questions about one photo (text: one per line), answered in one request.

    ViLT answers them all in one forward pass; BLIP encodes the photo once for all of them.
    """
    asked = _questions(questions)
    k = whole_number(top_k, "number of answers", 1, MAX_TOP_K)
    name = get_spec(model or DEFAULT_MODEL, "vqa").name
    photo = image.convert("RGB") if isinstance(image, Image.Image) else load_image(image)
    return _answer_on_device(photo, tuple(asked), name, k, pretrained)


def _questions(questions: str | Sequence[str]) -> list[str]:
    """Up to MAX_QUESTIONS questions: text with one per line, or a list of texts."""
    if not isinstance(questions, str):
        if isinstance(questions, bytes) or not all(isinstance(q, str) for q in questions):
            raise LabError("The questions must be text, one per line.")
        questions = "\n".join(" ".join(q.split()) for q in questions)
    return split_items(
        questions, what="question", max_items=MAX_QUESTIONS, commas=False, max_chars=MAX_CHARS
    )


def _as_read(tokenizer, question: str, ids: list[int], full: int, limit: int) -> tuple[str, str]:
    """The question as the model read it (`ids`, cut to `limit` tokens of `full`), and the
    note that says so when it was cut ("" when it was not)."""
    if full <= limit:
        return question, ""
    read = tokenizer.decode(ids, skip_special_tokens=True)
    return read, (
        f"“{_short(question)}” is {full} tokens long, but this model reads {limit}: "
        f"only “{_short(read, 60)}” was used."
    )


def score_meaning(loaded: LoadedModel) -> str:
    """What the number beside an answer means, for this model."""
    if loaded.spec.kind == "vilt":
        count = len(loaded.model.config.id2label)
        return (
            f"ViLT scores each of its {count:,} answers on its own, with a sigmoid (it was trained "
            "to say yes or no to every answer): a score is how well that answer fits, not a share "
            "of one whole, so the scores need not add up to 1."
        )
    return (
        "BLIP writes its answer token by token; the number is the probability of that whole "
        "answer: the product of its tokens' probabilities, the end token included."
    )


# ---------------------------------------------------------------------------------------------
# preprocess -> forward -> postprocess


@gpu
def _answer_on_device(
    image: Image.Image, questions: tuple[str, ...], name: str, top_k: int, pretrained: bool
) -> AnswerSheet:
    loaded = load_model(name, topic="vqa", pretrained=pretrained)
    tokenizer = loaded.processor.tokenizer
    limit = text_limit(loaded)
    whole = tokenizer(list(questions), verbose=False).input_ids
    encoded = tokenizer(list(questions), truncation=True, max_length=limit, verbose=False)
    lengths = zip(questions, encoded.input_ids, map(len, whole))
    read = [_as_read(tokenizer, q, ids, full, limit) for q, ids, full in lengths]  # (text, note)
    if loaded.spec.kind == "vilt":
        answers = _rank_answers(loaded, image, encoded, top_k)
    else:
        answers = [_write_answer(loaded, image, ids) for ids in encoded.input_ids]
    items = tuple(Answers(q, tuple(a), n) for (q, n), a in zip(read, answers))
    return AnswerSheet(name, items, score_meaning(loaded), loaded.spec.kind != "vilt")


def _rank_answers(loaded: LoadedModel, image: Image.Image, encoded, top_k: int):
    """ViLT: every question against the photo in one batch; sigmoid scores, as it was trained."""
    pixels = loaded.processor.image_processor(
        images=_not_too_thin(image, loaded.processor.image_processor), return_tensors="pt"
    )
    text = loaded.processor.tokenizer.pad(encoded, return_tensors="pt")  # (Q, tokens)
    count = text.input_ids.shape[0]
    batch = {
        **text,
        "pixel_values": pixels.pixel_values.expand(count, -1, -1, -1),  # (Q, 3, H, W)
        "pixel_mask": pixels.pixel_mask.expand(count, -1, -1),  # (Q, H, W)
    }
    with torch.inference_mode():
        logits = loaded.model(**loaded.to_device(batch)).logits  # (Q, answers)
        scores, indices = torch.sigmoid(logits.float()).topk(min(top_k, logits.shape[-1]), dim=-1)
    labels = loaded.model.config.id2label
    return [
        [(labels[int(i)], float(s)) for s, i in zip(row_scores, row_indices)]
        for row_scores, row_indices in zip(scores.cpu(), indices.cpu())
    ]


def _not_too_thin(image: Image.Image, processor) -> Image.Image:
    """A strip too thin for ViLT's resize, padded with white. The processor scales the shorter
    side up, caps the longer one, then rounds both down to its size divisor: past a ratio of
    cap / divisor (1:20 for the real model) the shorter side would round to 0."""
    from transformers.models.vilt.image_processing_vilt import MAX_LONGER_EDGE, MAX_SHORTER_EDGE

    shorter = processor.size["shortest_edge"]
    cap = int(MAX_LONGER_EDGE / MAX_SHORTER_EDGE * shorter)
    ratio = max(1, cap // (processor.size_divisor or 1))
    width, height = image.size
    side = -(-max(width, height) // ratio)  # ceil: the shortest side that still survives
    if min(width, height) >= side:
        return image
    return ImageOps.pad(image, (max(width, side), max(height, side)), color="white")


def _write_answer(loaded: LoadedModel, image: Image.Image, ids: list[int]):
    """BLIP: BlipForQuestionAnswering.generate, with the photo encoded once for all questions."""
    model, device = loaded.model, loaded.device
    text_config = model.config.text_config
    asked = read_with_photo(loaded, model.text_encoder, image, ids).last_hidden_state  # (1, T, W)
    with torch.inference_mode():
        start = torch.full((1, 1), model.decoder_start_token_id, device=device)
        output = model.text_decoder.generate(
            input_ids=start,
            eos_token_id=text_config.sep_token_id,
            pad_token_id=text_config.pad_token_id,
            encoder_hidden_states=asked,
            encoder_attention_mask=torch.ones(asked.shape[:-1], dtype=torch.long, device=device),
            max_new_tokens=ANSWER_TOKENS,
            do_sample=False,
            num_beams=1,
            return_dict_in_generate=True,
            output_scores=True,
        )
        steps = model.text_decoder.compute_transition_scores(
            output.sequences, output.scores, normalize_logits=True
        )  # (1, steps): log-probabilities of the chosen tokens
    text = loaded.processor.tokenizer.decode(output.sequences[0], skip_special_tokens=True)
    return [(text, math.exp(float(steps[0].float().sum())))]


@gpu
def _ground_on_device(
    image: Image.Image, question: str, name: str, answer: str | None, pretrained: bool
) -> AnswerGrounding:
    loaded = load_model(name, topic="vqa", pretrained=pretrained)
    tokenizer = loaded.processor.tokenizer
    limit = text_limit(loaded)
    encoded = tokenizer(question, truncation=True, max_length=limit, verbose=False)
    full = len(tokenizer(question, verbose=False).input_ids)
    read, cut = _as_read(tokenizer, question, encoded.input_ids, full, limit)
    notes = [NOTE, cut] if cut else [NOTE]
    if loaded.spec.kind == "vilt":
        return _vilt_relevance(loaded, image, read, encoded, answer, tuple(notes))
    if answer is not None:
        notes.append("BLIP writes its own answer; the map is its question's, whatever the answer.")
    return _blip_question_maps(loaded, image, read, encoded.input_ids, tuple(notes))


def _vilt_relevance(loaded, image, question, encoded, answer, notes) -> AnswerGrounding:
    """Chefer's rule through every layer of ViLT's single stream, for one answer's logit."""
    model = loaded.model
    labels = model.config.id2label
    index = None
    if answer is not None:
        index = next((i for i, label in labels.items() if label == answer), None)
        if index is None:
            raise LabError(
                f"ViLT has no answer {answer[:40]!r} in its list of {len(labels):,}; "
                "pick one from its answer bars."
            )
    processor = loaded.processor.image_processor
    pixels = loaded.to_device(
        dict(processor(images=_not_too_thin(image, processor), return_tensors="pt"))
    )
    text = loaded.to_device(dict(loaded.processor.tokenizer.pad(encoded, return_tensors="pt")))
    text = {key: value[None] if value.ndim == 1 else value for key, value in text.items()}
    with torch.enable_grad():
        # ViLT's own patch embedding; it shuffles the patches, so keep their places to map back.
        patches, patch_mask, (places, _) = model.vilt.embeddings.visual_embed(
            pixels["pixel_values"],
            pixels["pixel_mask"],
            max_image_length=model.config.max_image_length,
        )
        output = model(
            **text, image_embeds=patches, pixel_mask=patch_mask, output_attentions=True
        )
        if not output.attentions or output.attentions[0] is None:
            raise no_attentions(loaded.spec.name)
        logits = output.logits[0]  # (answers,)
        index = int(logits.argmax()) if index is None else index
        gradients = torch.autograd.grad(logits[index], output.attentions)
    relevance = chefer_relevance([a.detach() for a in output.attentions], gradients)  # (1, T, T)
    words = text["input_ids"].shape[1]
    scores = relevance[0, 0, words + 1 :].float().cpu()  # the text [CLS] row over the patches
    rows, cols = (size // model.config.patch_size for size in pixels["pixel_values"].shape[-2:])
    grid = torch.zeros(rows, cols)
    where = places[0].cpu()  # (patches, 2): (row, col) of each image token
    grid[where[:, 0], where[:, 1]] = scores
    seen = _view(pixels["pixel_values"][0], processor)
    return AnswerGrounding(
        loaded.spec.name,
        question,
        labels[index],
        float(torch.sigmoid(logits[index].detach().float())),
        as_grid(grid.flatten(), rows, cols),
        method=(
            "ViLT reads the question and the photo in one stream; the map is the relevance of "
            "the answer's score to each image patch (Chefer et al., 2021): gradients times "
            "attention, through all its layers, from the token its answer head reads."
        ),
        image=seen,
        notes=notes,
    )


def _blip_question_maps(loaded, image, question, ids, notes) -> AnswerGrounding:
    """BLIP: the question encoder's cross-attention to the patches, per word and in the mean."""
    tokenizer = loaded.processor.tokenizer
    # mean over layers and heads: (tokens, patches)
    rows = cross_attention(loaded, loaded.model.text_encoder, image, ids).mean(dim=(0, 1)).cpu()
    special = set(tokenizer.all_special_ids)
    kept = [i for i, token in enumerate(ids) if token not in special] or list(range(len(ids)))
    grid = patch_grid(loaded, rows.shape[-1])
    word_maps = as_grid(rows[kept], *grid)
    ((text, score),) = _write_answer(loaded, image, ids)
    return AnswerGrounding(
        loaded.spec.name,
        question,
        text,
        score,
        word_maps.mean(axis=0),
        tuple(tokenizer.convert_ids_to_tokens([ids[i] for i in kept])),
        word_maps,
        method=(
            "BLIP's question encoder reads the photo through cross-attention; each word's map is "
            "how much that word attended to each patch (mean over heads and layers), and the "
            "large map is their mean."
        ),
        image=model_view(loaded, image),
        notes=notes,
    )


def _view(pixel_values: torch.Tensor, processor) -> Image.Image:
    from vlmlab.vit import _as_seen  # the model's input as the picture it shows

    return _as_seen(pixel_values.float().cpu(), processor)


def _short(text: str, size: int = 40) -> str:
    return text if len(text) <= size else text[: size - 1].rstrip() + "…"
