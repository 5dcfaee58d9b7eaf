"""Image captioning with BLIP (Li et al., 2022): "a red truck is parked on a street lined with
trees". The caption is decoded greedily, by beam search or by nucleus sampling, streamed word by
word, and every token keeps the probability it was chosen with, so a page can colour it by the
model's confidence; and which patches each word looked at (the decoder's cross-attention).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image
from transformers import StoppingCriteria, StoppingCriteriaList

from vlmlab.cache import LRUCache, photo_fingerprint
from vlmlab.checks import finite_number, flag, whole_number
from vlmlab.device import gpu
from vlmlab.errors import LabError
from vlmlab.grounding import NOTE, as_grid, check_layer, no_attentions
from vlmlab.images import ImageSource, rgb_image
from vlmlab.models import LoadedModel, default_model, get_spec, load_model
from vlmlab.text import clean_text

DEFAULT_MODEL = default_model("captioning")
DECODINGS = ("greedy", "beam search", "sampling")
MAX_BEAMS = 8
MAX_NEW_TOKENS = 60
MAX_TEMPERATURE = 2.0
MAPS_SWITCH = "Maps must be switched on (True) or off (False)."
SAMPLING_SWITCH = "Sampling must be switched on (True) or off (False)."

# Compute once, look many times: the vision encoder runs once per (model, photo), so trying
# another decoding re-runs only the text decoder; a deterministic caption is kept whole.
_image_embeds = LRUCache(maxsize=16)  # (model, photo) -> (1, patches + 1, width) on the CPU
_captions = LRUCache(maxsize=128)  # (model, photo, prefix ids, decoding) -> Caption


@dataclasses.dataclass(frozen=True)
class Token:
    """One generated token, as it reads in the caption."""

    text: str  # " cat" starts a word, "s" continues one; "" for the end token
    probability: float  # in (0, 1]: its probability in the distribution it was chosen from
    token_id: int
    end: bool = False  # the token that ended the caption ([SEP] for BLIP)


@dataclasses.dataclass(frozen=True)
class Caption:
    """A caption, its tokens with their probabilities, and (beam search) every beam."""

    text: str  # the whole caption, the prefix included (BLIP continues the prefix)
    tokens: tuple[Token, ...]  # the generated ones, in order (partial while `done` is False)
    beams: tuple[tuple[str, float], ...] = ()  # beam search: (caption, score), best first
    prefix: str = ""  # the prefix as the model read it (lower-cased, maybe cut)
    notes: tuple[str, ...] = ()  # what the lab changed in the request, for the user to read
    model: str = ""
    sampled: bool = False  # probabilities are then those of the reshaped distribution
    done: bool = True  # False for the partial captions of `caption_stream`
    # With `maps=True`: (tokens, rows, cols), for each generated token the decoder's
    # cross-attention to the patches from the position that predicted it (mean over heads and
    # layers); for beam search, the best beam's, teacher-forced.
    maps: np.ndarray | None = None

    @property
    def probability(self) -> float:
        """The probability of the whole generated sequence: the product of its tokens'."""
        return math.exp(sum(math.log(token.probability) for token in self.tokens))


@dataclasses.dataclass(frozen=True, eq=False)
class Grounding:
    """Which patches each token of a caption looked at, teacher-forced."""

    words: tuple[str, ...]  # the caption's tokens as the tokenizer splits them ("cat", "##s")
    maps: np.ndarray  # (tokens, rows, cols) ≥ 0, each row sums to at most 1 (CLS left out)
    layer: int | None  # 1-based decoder layer, or None: the mean over all of them
    layers: int
    image: Image.Image  # the photo as the model saw it
    notes: tuple[str, ...] = (NOTE,)

    def pairs(self) -> list[tuple[str, np.ndarray]]:
        return list(zip(self.words, self.maps, strict=True))


@dataclasses.dataclass(frozen=True)
class Decoding:
    """Validated decoding settings, as `generate` takes them."""

    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 30

    def generate_kwargs(self) -> dict:
        kwargs: dict = {"max_new_tokens": self.max_new_tokens, "num_beams": self.num_beams}
        if self.num_beams > 1:
            kwargs["num_return_sequences"] = self.num_beams  # every beam, with its score
        if self.do_sample:  # nucleus sampling: top-p alone (transformers adds top-k 50 by default)
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=0)
        else:
            kwargs["do_sample"] = False
        return kwargs


# ---------------------------------------------------------------------------------------------
# Public API


def caption(
    image: ImageSource,
    *,
    model: str = DEFAULT_MODEL,
    prompt: str | None = None,
    num_beams: int = 1,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 30,
    pretrained: bool = True,
    maps: bool = False,
) -> Caption:
    """BLIP's caption of `image`, with per-token probabilities (and every beam with beam search).

    `prompt` is BLIP's conditional prefix ("a picture of"); the caption continues it. With
    `do_sample` off the text equals `model.generate` with the same settings. `maps`: each
    token's cross-attention map too (`Caption.maps`).
    """
    decoding = check_decoding(num_beams, do_sample, temperature, top_p, max_new_tokens)
    return _caption_on_device(
        rgb_image(image), _name(model), prompt, decoding, pretrained, _maps_switch(maps)
    )


def caption_stream(
    image: ImageSource,
    *,
    model: str = DEFAULT_MODEL,
    prompt: str | None = None,
    num_beams: int = 1,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 30,
    pretrained: bool = True,
    maps: bool = False,
) -> Iterator[Caption]:
    """Like `caption`, but yields the growing caption (`done=False`) word by word as it is
    generated, then the final `Caption`. Beam search has no single caption until it ends, so with
    `num_beams > 1` (or a caption already cached) only the final one comes. With `maps` every
    partial caption carries its words' maps, caught as the decoder computes them."""
    decoding = check_decoding(num_beams, do_sample, temperature, top_p, max_new_tokens)
    return _stream_on_device(
        rgb_image(image), _name(model), prompt, decoding, pretrained, _maps_switch(maps)
    )


def ground(
    image: ImageSource,
    text: str,
    *,
    model: str = DEFAULT_MODEL,
    layer: int | None = None,
    pretrained: bool = True,
) -> list[tuple[str, np.ndarray]]:
    """Which patches each token of `text` looked at: (token, (rows, cols) map) pairs in order.

    The caption is read teacher-forced after [DEC], as `caption` reads a prefix; a token's map
    is the text decoder's cross-attention from the position that predicted it to the image's
    patch tokens (its CLS left out), mean over heads, and over all decoder layers when `layer`
    is None, else that layer's (1-based). Special tokens are left out.
    """
    return ground_caption(image, text, model=model, layer=layer, pretrained=pretrained).pairs()


def ground_caption(
    image: ImageSource,
    text: str,
    *,
    model: str = DEFAULT_MODEL,
    layer: int | None = None,
    pretrained: bool = True,
) -> Grounding:
    """Like `ground`, with the photo as the model saw it and any notes (a caption cut short)."""
    words = " ".join(clean_text(text, what="caption").split())
    if not words:
        raise LabError("Please give a caption to ground: the words whose maps you want to see.")
    return _ground_on_device(rgb_image(image), _name(model), words, layer, pretrained)


def settings_for(
    decoding: str,
    *,
    num_beams: int = 3,
    temperature: float = 1.0,
    top_p: float = 0.9,
    max_new_tokens: int = 30,
) -> dict:
    """The `caption` keywords for a decoding chosen by name (greedy, beam search or sampling)."""
    name = " ".join(str(decoding).lower().split())
    if name not in DECODINGS:
        raise LabError(f"Choose the decoding from: {', '.join(DECODINGS)}.")
    return {
        "num_beams": num_beams if name == "beam search" else 1,
        "do_sample": name == "sampling",
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": max_new_tokens,
    }


def check_decoding(num_beams, do_sample, temperature, top_p, max_new_tokens) -> Decoding:
    """The settings, checked one by one with a sentence that says what to do."""
    beams = whole_number(num_beams, "number of beams", 1, MAX_BEAMS)
    do_sample = flag(do_sample, "sampling", message=SAMPLING_SWITCH)
    if do_sample and beams > 1:
        raise LabError("Choose beam search or sampling, not both: use 1 beam to sample.")
    heat = finite_number(temperature, "temperature")
    if not 0 < heat <= MAX_TEMPERATURE:
        raise LabError(
            f"The temperature must be above 0 and at most {MAX_TEMPERATURE:g} "
            "(1 keeps the model's own probabilities)."
        )
    nucleus = finite_number(top_p, "top-p", message="Top-p must be a number.")
    if not 0 < nucleus <= 1:
        raise LabError("Top-p must be above 0 and at most 1 (1 keeps every word in the draw).")
    length = whole_number(max_new_tokens, "maximum caption length", 1, MAX_NEW_TOKENS)
    return Decoding(beams, do_sample, heat, nucleus, length)


def patch_grid(loaded: LoadedModel, patches: int) -> tuple[int, int]:
    """The patch grid (rows, cols) of BLIP's image tokens, from its processor and config."""
    size = loaded.processor.image_processor.size
    patch = loaded.model.config.vision_config.patch_size
    rows, cols = size["height"] // patch, size["width"] // patch
    if rows * cols != patches:  # pragma: no cover - a processor that does not match its model
        raise LabError(f"{loaded.spec.name}'s image tokens do not form its {rows}×{cols} grid.")
    return rows, cols


def model_view(loaded: LoadedModel, image: Image.Image) -> Image.Image:
    """The photo as BLIP sees it: resized to its input size (no crop)."""
    size = loaded.processor.image_processor.size
    return image.resize((size["width"], size["height"]), Image.Resampling.BICUBIC)


def clear_caches() -> None:
    """Forget cached image embeddings and captions (benchmarks time cold calls)."""
    _image_embeds.clear()
    _captions.clear()


def text_limit(loaded: LoadedModel) -> int:
    """How many tokens the model's text side reads, from its config and tokenizer."""
    config = getattr(loaded.model.config, "text_config", loaded.model.config)
    positions = config.max_position_embeddings
    return min(positions, getattr(loaded.processor.tokenizer, "model_max_length", positions))


def image_embeds(loaded: LoadedModel, image: Image.Image) -> torch.Tensor:
    """BLIP's vision encoder output for `image`, cached per (model, photo), on the CPU."""
    key = (*loaded.key, photo_fingerprint(image))

    def encode() -> torch.Tensor:
        pixels = loaded.processor.image_processor(images=image, return_tensors="pt")
        with torch.inference_mode():
            hidden = loaded.model.vision_model(pixel_values=loaded.to_device(pixels.pixel_values))
        return hidden[0].cpu()  # (1, patches + 1, width)

    return _image_embeds.get_or_compute(key, encode)


def read_with_photo(loaded: LoadedModel, text_model, image: Image.Image, ids, *, attentions=False):
    """One of BLIP's text transformers (the captioner's `text_decoder`, the VQA model's
    `text_encoder`) reading token `ids` while it attends to the photo's patches: its output,
    with its cross-attentions when `attentions`."""
    device = loaded.device
    with torch.inference_mode():
        embeds = image_embeds(loaded, image).to(device)  # (1, patches + 1, width)
        tokens = torch.tensor([list(ids)], device=device)  # (1, positions)
        return text_model(
            input_ids=tokens,
            attention_mask=torch.ones_like(tokens),
            encoder_hidden_states=embeds,
            encoder_attention_mask=torch.ones(embeds.shape[:-1], dtype=torch.long, device=device),
            output_attentions=attentions,
            return_dict=True,
        )


def cross_attention(loaded: LoadedModel, text_model, image: Image.Image, ids) -> torch.Tensor:
    """Where each position of `ids` looked in the photo, per layer and head of `text_model`:
    its cross-attention to the patches (the image's CLS left out), the one grounding loop of
    captions and answers. (layers, heads, positions, patches) float32, on the model's device."""
    output = read_with_photo(loaded, text_model, image, ids, attentions=True)
    if not output.cross_attentions or output.cross_attentions[0] is None:
        raise no_attentions(loaded.spec.name)
    # each layer: (1, heads, positions, patches + 1); the image's CLS comes first
    return torch.stack([layer[0, :, :, 1:] for layer in output.cross_attentions]).float()


# ---------------------------------------------------------------------------------------------
# preprocess -> forward -> postprocess


@dataclasses.dataclass(frozen=True)
class _Job:
    loaded: LoadedModel
    image: Image.Image
    prompt_ids: tuple[int, ...]  # [DEC] and the prefix: what the decoder starts from
    prefix: str
    decoding: Decoding
    notes: tuple[str, ...]
    maps: bool = False

    @property
    def key(self) -> tuple | None:
        """The cache key, or None when sampling (every run differs)."""
        if self.decoding.do_sample:
            return None
        image = photo_fingerprint(self.image)
        return (self.loaded.key, image, self.prompt_ids, self.decoding, self.maps)


@gpu
def _caption_on_device(
    image, name: str, prompt, decoding: Decoding, pretrained: bool, maps: bool = False
) -> Caption:
    job = _prepare(image, name, prompt, decoding, pretrained, maps)
    if job.key is None:
        return _run(job)
    return _captions.get_or_compute(job.key, lambda: _run(job))


@gpu
def _stream_on_device(
    image, name: str, prompt, decoding: Decoding, pretrained: bool, maps: bool = False
):
    job = _prepare(image, name, prompt, decoding, pretrained, maps)  # bad input: before a thread
    yield from _stream(job)


@gpu
def _ground_on_device(image, name: str, words: str, layer, pretrained: bool) -> Grounding:
    loaded = load_model(name, topic="captioning", pretrained=pretrained)
    decoder = loaded.model.text_decoder
    layers = len(decoder.bert.encoder.layer)
    layer = check_layer(layer, layers)
    tokenizer = loaded.processor.tokenizer
    ids = tokenizer(words, add_special_tokens=False, verbose=False).input_ids
    if not ids:
        raise LabError("Please give a caption to ground: the words whose maps you want to see.")
    limit = text_limit(loaded)
    notes = [NOTE]
    if len(ids) > limit - 1:  # [DEC] takes a place
        notes.append(
            f"The caption is {len(ids)} tokens long, but this model reads {limit}: only the "
            f"first {limit - 1} tokens are shown."
        )
        ids = ids[: limit - 1]
    bos = loaded.model.config.text_config.bos_token_id
    rows = _teacher_forced(loaded, image, [bos, *ids])[:, : len(ids)]  # (L, tokens, patches)
    grid = patch_grid(loaded, rows.shape[-1])
    chosen = rows.mean(0) if layer is None else rows[layer - 1]
    return Grounding(
        tuple(tokenizer.convert_ids_to_tokens(ids)),
        as_grid(chosen, *grid),
        layer,
        layers,
        model_view(loaded, image),
        tuple(notes),
    )


def _teacher_forced(loaded: LoadedModel, image: Image.Image, ids: list[int]) -> torch.Tensor:
    """The decoder read over `ids` with the photo: per layer, each position's cross-attention to
    the patches, mean over heads. (layers, positions, patches) float32 on the CPU."""
    return cross_attention(loaded, loaded.model.text_decoder, image, ids).mean(dim=1).cpu()


def _stream(job: _Job) -> Iterator[Caption]:
    if job.decoding.num_beams > 1 or job.key in _captions:  # (beam search never samples)
        yield _captions.get_or_compute(job.key, lambda: _run(job))
        return
    events: queue.Queue = queue.Queue()
    feed = _TokenFeed(events)

    def work() -> None:
        try:
            events.put(("done", _run(job, feed)))
        except BaseException as error:  # handed to the reader, who raises it
            events.put(("error", error))

    worker = threading.Thread(target=work, name="caption-stream", daemon=True)
    worker.start()
    spelling, tokens, rows, words = _Spelling(job), [], [], 0
    try:
        while True:
            kind, value = events.get()
            if kind == "error":
                raise value
            if kind == "done":
                if job.key is not None:
                    _captions.get_or_compute(job.key, lambda done=value: done)
                yield value
                return
            token_id, probability, row = value
            tokens.append(spelling.token(token_id, probability))
            rows.append(row)
            if len(tokens) - 1 > words and tokens[-1].text[:1].isspace():
                words = len(tokens) - 1  # complete words; the newest token may start another
                partial = job.prefix + "".join(token.text for token in tokens[:words])
                maps = _maps(job, rows[:words]) if job.maps else None
                yield _caption(job, partial, tokens[:words], (), done=False, maps=maps)
    finally:
        feed.cancelled.set()  # a reader that left stops the decoder at its next step


def _prepare(image, name: str, prompt, decoding: Decoding, pretrained: bool, maps=False) -> _Job:
    loaded = load_model(name, topic="captioning", pretrained=pretrained)
    tokenizer = loaded.processor.tokenizer
    limit = text_limit(loaded)
    notes = []
    new_tokens = min(decoding.max_new_tokens, limit - 1)  # [DEC] takes a place
    if new_tokens < decoding.max_new_tokens:
        notes.append(f"This model writes at most {new_tokens} tokens; the caption stops there.")
        decoding = dataclasses.replace(decoding, max_new_tokens=new_tokens)
    prefix = " ".join(clean_text(prompt, what="prefix").split())
    ids = tokenizer(prefix, add_special_tokens=False, verbose=False).input_ids if prefix else []
    room = limit - 1 - decoding.max_new_tokens
    if len(ids) > room:
        length, ids = len(ids), ids[:room]
        cut = tokenizer.decode(ids, skip_special_tokens=True)
        notes.append(
            f"The prefix is {length} tokens long, but this model reads {limit} tokens and "
            f"{decoding.max_new_tokens} are kept for the caption: only “{cut}” was used."
        )
    prompt_ids = (loaded.model.config.text_config.bos_token_id, *ids)
    as_read = tokenizer.decode(ids, skip_special_tokens=True)
    return _Job(loaded, image, prompt_ids, as_read, decoding, tuple(notes), maps)


def _run(job: _Job, feed: _TokenFeed | None = None) -> Caption:
    """BLIP's own `generate`, with the image encoded once (cached) and the scores kept."""
    loaded, decoding = job.loaded, job.decoding
    model, device = loaded.model, loaded.device
    text_config = model.config.text_config
    # Greedy and sampling: each step's cross-attention is caught as the decoder computes it.
    watch = _CrossAttention(model.text_decoder) if job.maps and decoding.num_beams == 1 else None
    if feed is not None:
        feed.watch = watch  # it reads the newest row the watch closed
    criteria = [c for c in (watch, feed) if c is not None]
    with torch.inference_mode(), watch or contextlib.nullcontext():
        embeds = image_embeds(loaded, job.image).to(device)  # (1, patches + 1, width)
        ids = torch.tensor([job.prompt_ids], device=device)  # (1, prompt)
        output = model.text_decoder.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            encoder_hidden_states=embeds,
            encoder_attention_mask=torch.ones(embeds.shape[:-1], dtype=torch.long, device=device),
            eos_token_id=text_config.sep_token_id,
            pad_token_id=text_config.pad_token_id,
            return_dict_in_generate=True,
            output_scores=True,
            stopping_criteria=StoppingCriteriaList(criteria),
            **decoding.generate_kwargs(),
        )
    caption = _postprocess(job, output)
    if not job.maps:
        return caption
    if watch is not None:
        rows = watch.rows[: len(caption.tokens)]
    else:  # beam search: the best beam, read again teacher-forced
        ids = [*job.prompt_ids, *(token.token_id for token in caption.tokens)]
        rows = list(_teacher_forced(loaded, job.image, ids).mean(0)[len(job.prompt_ids) - 1 : -1])
    return dataclasses.replace(caption, maps=_maps(job, rows))


def _postprocess(job: _Job, output) -> Caption:
    decoder = job.loaded.model.text_decoder
    tokenizer = job.loaded.processor.tokenizer
    start = len(job.prompt_ids)
    if job.decoding.num_beams > 1:  # scores are already log-probabilities per beam
        steps = decoder.compute_transition_scores(
            output.sequences, output.scores, output.beam_indices
        )
        lengths = (output.beam_indices >= 0).sum(-1).tolist()  # (beams,)
    else:  # scores are the (processed) logits of each step
        steps = decoder.compute_transition_scores(
            output.sequences, output.scores, normalize_logits=True
        )
        lengths = [steps.shape[-1]]
    sequences = output.sequences.cpu()  # (beams, prompt + steps)
    probabilities = steps[0, : lengths[0]].exp().float().cpu().tolist()
    generated = sequences[0, start : start + lengths[0]].tolist()
    spelling = _Spelling(job)
    tokens = [spelling.token(i, p) for i, p in zip(generated, probabilities, strict=True)]
    text = tokenizer.decode(sequences[0], skip_special_tokens=True)
    beams = ()
    if job.decoding.num_beams > 1:
        beams = tuple(
            (tokenizer.decode(row, skip_special_tokens=True), float(score))
            for row, score in zip(sequences, output.sequences_scores.float().cpu(), strict=True)
        )
    return _caption(job, text, tokens, beams, done=True)


def _caption(job: _Job, text: str, tokens, beams, *, done: bool, maps=None) -> Caption:
    name = job.loaded.spec.name
    return Caption(
        text, tuple(tokens), beams, job.prefix, job.notes, name, job.decoding.do_sample, done, maps
    )


def _maps(job: _Job, rows: list[torch.Tensor]) -> np.ndarray:
    """Per-token patch rows, (patches,) each → (tokens, rows, cols) maps on BLIP's grid."""
    vision = job.loaded.model.config.vision_config
    grid = patch_grid(job.loaded, (vision.image_size // vision.patch_size) ** 2)
    if not rows:
        return np.zeros((0, *grid), np.float32)
    return as_grid(torch.stack(rows), *grid)


class _CrossAttention(StoppingCriteria):
    """Catches, at each decoding step, the text decoder's cross-attention from its newest
    position to the patches (mean over heads and layers), while `generate` runs.

    A forward hook is unavoidable here: `generate` keeps the attentions to itself until it ends.
    The hooks live only inside `with` and keep only what the thread that entered it computes
    (another caption on the same model at the same time is not theirs); as a stopping criterion
    it closes each step and never stops the caption.
    """

    def __init__(self, decoder):
        self.modules = [layer.crossattention.self for layer in decoder.bert.encoder.layer]
        self.step: list[torch.Tensor] = []  # this step's rows, one per layer: (patches,)
        self.rows: list[torch.Tensor] = []  # one per generated token: (patches,) on the CPU
        self.handles = []
        self.thread: int | None = None

    def __enter__(self):
        self.thread = threading.get_ident()
        self.handles = [module.register_forward_hook(self._keep) for module in self.modules]
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _keep(self, module, args, output) -> None:
        if threading.get_ident() != self.thread:
            return
        probabilities = output[1]  # (B, heads, new positions, patches + 1)
        self.step.append(probabilities[0, :, -1, 1:].float().mean(dim=0))

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        if self.step:
            self.rows.append(torch.stack(self.step).mean(dim=0).cpu())
        self.step = []
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class _Spelling:
    """Turns token ids, one by one, into `Token`s that read as the decoded caption does."""

    def __init__(self, job: _Job):
        self.tokenizer = job.loaded.processor.tokenizer
        self.end = job.loaded.model.config.text_config.sep_token_id  # what `generate` stops at
        self.ids = list(job.prompt_ids)
        self.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)

    def token(self, token_id: int, probability: float) -> Token:
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.startswith(self.text):  # " cat", "s", "." …
            piece = text[len(self.text) :]
        else:  # decoding re-spaced what came before
            piece = " " + self.tokenizer.decode([token_id], skip_special_tokens=True)
        self.text = text
        return Token(piece, float(probability), int(token_id), end=token_id == self.end)


class _TokenFeed(StoppingCriteria):
    """Passes each new token, with its probability, to a reader while `generate` runs.

    transformers hands every step's tokens and scores to its stopping criteria; this one never
    stops the caption by itself, only when the reader has gone away (`cancelled`).
    """

    def __init__(self, events: queue.Queue, watch: _CrossAttention | None = None):
        self.events = events
        self.watch = watch  # called before this one each step: its newest row is this token's
        self.cancelled = threading.Event()

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        token = int(input_ids[0, -1])  # input_ids: (1, length); scores[-1]: (1, vocab)
        probability = float(torch.softmax(scores[-1][0].float(), dim=-1)[token])
        row = self.watch.rows[-1] if self.watch is not None and self.watch.rows else None
        self.events.put(("token", (token, probability, row)))
        stop = self.cancelled.is_set()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


# ---------------------------------------------------------------------------------------------
# Checks


def _maps_switch(maps) -> bool:
    return flag(maps, "maps", message=MAPS_SWITCH)


def _name(model: str) -> str:
    return get_spec(model or DEFAULT_MODEL, "captioning").name
