"""The Captioning tab: BLIP describes the photo word by word, each word coloured by its
probability, with a strip of small maps under the words: which patches each word looked at."""

from __future__ import annotations

import gradio as gr

from . import links
from .cache_writes import as_file
from .common import (
    LIGHT_EVENT,
    MODEL_EVENT,
    Lab,
    Views,
    guard,
    open_photo,
    progress_callback,
    when_shown,
)
from .figures import keep_figures
from vlmlab import captioning
from vlmlab.backend import backend
from vlmlab.captioning.render import (
    BEAM_HEADERS,
    beam_rows,
    caption_html,
    caption_notes,
    grounding_gallery,
    grounding_notes,
    word_maps,
    word_picture,
)
from vlmlab.models import choices, get_spec, load_model

TITLE = "Captioning"

INTRO = """**Image captioning**: "a red truck is parked on a street lined with trees". BLIP
(Li et al., 2022) encodes the photo with a Vision Transformer, then a text decoder writes the
caption one token at a time, each time choosing from a probability distribution over its
vocabulary. **Greedy** takes the most likely token, **beam search** keeps the *n* best partial
captions, **sampling** draws a token (temperature flattens or sharpens the distribution, top-p
keeps only the likeliest words). A **prefix** ("a picture of") is a start the caption must
continue. Under the words, each word's **map**: where in the photo the decoder looked (its
cross-attention) when it chose that word; click one to see it large."""


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            model = gr.Dropdown(
                [(get_spec(name).title, name) for name in choices("captioning")],
                value=captioning.DEFAULT_MODEL,
                label="Captioning model",
            )
            decoding = gr.Radio(list(captioning.DECODINGS), value="greedy", label="Decoding")
            beams = gr.Slider(
                2, captioning.MAX_BEAMS, value=3, step=1, label="beams", visible=False
            )
            temperature = gr.Slider(
                0.1,
                captioning.MAX_TEMPERATURE,
                value=1.0,
                step=0.05,
                label="temperature",
                visible=False,
            )
            top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="top-p", visible=False)
            length = gr.Slider(
                1, captioning.MAX_NEW_TOKENS, value=30, step=1, label="maximum length (tokens)"
            )
            prefix = gr.Textbox(
                label="prefix (optional)", placeholder="a picture of", max_lines=1, max_length=500
            )
            run = gr.Button("Caption the photo", variant="primary")
        with gr.Column(scale=2):
            text = gr.Textbox(label="Caption", lines=2, interactive=False, elem_id="caption-text")
            view = gr.HTML(elem_id="caption-tokens")
            maps = gr.Gallery(
                label="Where each word looked (click a word for it large)",
                columns=10,
                rows=1,
                height=240,
                object_fit="contain",
                allow_preview=True,
                interactive=False,
                elem_id="caption-maps",
            )
            maps_notes = gr.Markdown(elem_id="caption-maps-notes")
            keep_figures("captioning", [(maps, "word map", ["model"])], {"model": model})
            notes = gr.Markdown(elem_id="caption-notes")
            table = gr.Dataframe(
                headers=BEAM_HEADERS,
                label="Every beam, best first",
                interactive=False,
                wrap=True,
                column_widths=["6%", "64%", "15%", "15%"],
                visible=False,
                elem_id="caption-beams",
            )
            with gr.Accordion("Maps for other words (a beam, your own caption)", open=False):
                words = gr.Textbox(
                    label="Caption to ground (click a beam above to fill it in)",
                    max_lines=2,
                    max_length=2000,
                    elem_id="caption-ground-text",
                )
                layer = gr.Number(
                    0, precision=0, minimum=0, label="decoder layer (0: the mean of all layers)"
                )
                ground = gr.Button("Show its maps", size="sm", elem_id="caption-ground")
    views = Views(
        text=text, table=table, view=view, notes=notes, maps=maps, maps_notes=maps_notes,
        beams=beams, temperature=temperature, top_p=top_p,
    )  # fmt: skip
    with_maps = views.pick(*CAPTION_VIEWS, *MAP_VIEWS)
    words_maps = views.pick(*MAP_VIEWS)

    # -- events ---------------------------------------------------------------------------------

    inputs = [lab.photo, model, decoding, beams, temperature, top_p, length, prefix]
    events = dict(show_progress="minimal", **MODEL_EVENT)
    # The page captions with maps; the `caption` endpoint keeps its four outputs for scripts.
    private = {"api_visibility": "private", **events}
    gr.on(
        [run.click, prefix.submit],
        with_maps.wire(caption_with_maps),
        inputs,
        with_maps.outputs,
        **private,
    )
    api_only = gr.Button(visible=False)
    caption_only = views.pick(*CAPTION_VIEWS)
    api_only.click(
        caption_only.wire(caption), inputs, caption_only.outputs, api_name="caption", **events
    )
    ground_inputs = [lab.photo, words, model, layer]
    ground.click(
        words_maps.wire(caption_grounding),
        ground_inputs,
        words_maps.outputs,
        api_name="caption_grounding",
        **events,
    )
    table.select(pick_beam, None, words, api_visibility="private", **LIGHT_EVENT).success(
        words_maps.wire(caption_grounding), ground_inputs, words_maps.outputs, **private
    )
    controls = views.pick("beams", "table", "temperature", "top_p")
    decoding.change(
        controls.wire(show_controls),
        decoding,
        controls.outputs,
        api_visibility="private",
        **LIGHT_EVENT,
    )
    when_shown(lab, TITLE, with_maps.wire(caption_with_maps), inputs, with_maps.outputs, **events)
    links.register(
        lab,
        "captioning",
        {
            "model": model,
            "decoding": decoding,
            "num_beams": beams,
            "temperature": temperature,
            "top_p": top_p,
            "max_new_tokens": length,
        },
        links.shown_step(lab, TITLE),
    )


# ---------------------------------------------------------------------------------------------
# Handlers: component values → one engine call → values by name (`Views.wire` maps them)

CAPTION_VIEWS = ("text", "table", "view", "notes")  # the `caption` endpoint's four outputs
MAP_VIEWS = ("maps", "maps_notes")


def caption_views(
    photo, model, decoding, num_beams, temperature, top_p, max_new_tokens, prompt, progress, maps
):
    """Caption the photo; streams the growing caption, then the final one with every number
    (and, with `maps`, each word's map and what the maps are)."""
    image = open_photo(photo).image
    loaded = backend().load(
        load_model, model, topic="captioning", progress=progress_callback(progress)
    )
    settings = captioning.settings_for(
        decoding, num_beams=num_beams, temperature=temperature, top_p=top_p,
        max_new_tokens=max_new_tokens,
    )  # fmt: skip
    waiting = "searching the beams…" if settings["num_beams"] > 1 else "looking at the photo…"
    yield {
        "text": "", "table": [], "view": f'<div style="opacity:.6">BLIP is {waiting}</div>',
        "notes": "", "maps": [], "maps_notes": "",
    }  # fmt: skip
    if maps and loaded is None:  # served elsewhere: drawing the maps needs the model here
        loaded = load_model(model, topic="captioning")
    strip = WordStrip(captioning.model_view(loaded, image)) if maps else None
    stream = backend().caption_stream(image, model=model, prompt=prompt, maps=maps, **settings)
    for part in stream:
        about = grounding_notes() if part.done and maps else ""
        if about and part.beams:
            about = f"The maps are the best beam's; click a beam for its own.\n\n{about}"
        yield {
            "text": part.text,
            "table": beam_rows(part),
            "view": caption_html(part, show_beams=False),
            "notes": caption_notes(part) if part.done else "",
            "maps": strip(part) if maps else [],
            "maps_notes": about,
        }


class WordStrip:
    """The maps under a streamed caption's words. The strip is sent whole with each new word, so
    each word's map is drawn and written once and then sent as the file it already is (drawing
    and encoding the whole strip anew took ~2 s of CPU per 30-word caption)."""

    def __init__(self, view):
        self.view, self.files = view, {}

    def __call__(self, part: captioning.Caption) -> list[tuple[str, str]]:
        strip = []
        for heat, word in word_maps(part):
            key = heat.tobytes()
            if key not in self.files:
                self.files[key] = as_file(word_picture(self.view, heat))
            strip.append((self.files[key], word))
        return strip


@guard
def caption(
    photo, model, decoding, num_beams, temperature, top_p, max_new_tokens, prompt,
    progress=gr.Progress(),  # noqa: B008 - Gradio injects it
):  # fmt: skip
    """Caption the photo; streams the growing caption, then the final one with every number.
    `decoding` is greedy, beam search (`num_beams`) or sampling (transformers' do_sample,
    with `temperature` and `top_p`)."""
    settings = (photo, model, decoding, num_beams, temperature, top_p, max_new_tokens, prompt)
    for update in caption_views(*settings, progress, maps=False):
        yield {name: update[name] for name in CAPTION_VIEWS}


@guard
def caption_with_maps(
    photo, model, decoding, num_beams, temperature, top_p, max_new_tokens, prompt,
    progress=gr.Progress(),  # noqa: B008 - Gradio injects it
):  # fmt: skip
    """`caption`, with each word's map in the strip under the words as the caption grows."""
    settings = (photo, model, decoding, num_beams, temperature, top_p, max_new_tokens, prompt)
    yield from caption_views(*settings, progress, maps=True)


@guard
def caption_grounding(photo, text, model, layer, progress=gr.Progress()) -> dict:  # noqa: B008
    """Each token's map for a caption you give (teacher-forced): decoder `layer` (1-based), or
    0 for the mean of all layers."""
    image = open_photo(photo).image
    load_model(model, topic="captioning", progress=progress_callback(progress))
    found = captioning.ground_caption(image, text, model=model, layer=layer or None)
    about = grounding_notes(layer=found.layer, layers=found.layers, extra=found.notes[1:])
    return {"maps": grounding_gallery(found), "maps_notes": about}


def pick_beam(event: gr.SelectData):
    """The clicked beam's caption (the table's second column), for grounding."""
    row = event.row_value or []
    return str(row[1]) if len(row) > 1 else gr.skip()


def show_controls(decoding: str) -> dict:
    """The settings of the decoding chosen, and the beams' table for beam search."""
    beams_on, sampling_on = decoding == "beam search", decoding == "sampling"
    return {
        "beams": gr.update(visible=beams_on),
        "table": gr.update(visible=beams_on),
        "temperature": gr.update(visible=sampling_on),
        "top_p": gr.update(visible=sampling_on),
    }
