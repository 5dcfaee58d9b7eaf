"""The Captioning tab: BLIP describes the photo word by word, each word coloured by its
probability, with a strip of small maps under the words: which patches each word looked at."""

from __future__ import annotations

import gradio as gr

from . import links
from .common import (
    LIGHT_EVENT,
    MODEL_EVENT,
    Lab,
    guard,
    open_photo,
    progress_callback,
    when_shown,
)
from .figures import keep_figures
from vlmlab import captioning
from vlmlab.backend import backend
from vlmlab.captioning_render import (
    BEAM_HEADERS,
    beam_rows,
    caption_html,
    caption_notes,
    grounding_gallery,
    grounding_notes,
    word_gallery,
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
    outputs = [text, table, view, notes]
    with_maps = [*outputs, maps, maps_notes]

    # -- handlers: an engine call and a few lines each ------------------------------------------

    def views(photo, model, decoding, num_beams, temperature, top_p, max_new_tokens, prompt,
              progress, maps):  # fmt: skip
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
        yield "", [], f'<div style="opacity:.6">BLIP is {waiting}</div>', "", [], ""
        if maps and loaded is None:  # served elsewhere: drawing the maps needs the model here
            loaded = load_model(model, topic="captioning")
        seen = captioning.model_view(loaded, image) if maps else None
        stream = backend().caption_stream(image, model=model, prompt=prompt, maps=maps, **settings)
        for part in stream:
            html = caption_html(part, show_beams=False)
            about = grounding_notes() if part.done and maps else ""
            if about and part.beams:
                about = f"The maps are the best beam's; click a beam for its own.\n\n{about}"
            yield (
                part.text,
                beam_rows(part),
                html,
                caption_notes(part) if part.done else "",
                word_gallery(part, seen) if maps else [],
                about,
            )

    @guard
    def caption(
        photo, model, decoding, num_beams, temperature, top_p, max_new_tokens, prompt,
        progress=gr.Progress(),
    ):  # fmt: skip
        """Caption the photo; streams the growing caption, then the final one with every number.
        `decoding` is greedy, beam search (`num_beams`) or sampling (transformers' do_sample,
        with `temperature` and `top_p`)."""
        settings = (photo, model, decoding, num_beams, temperature, top_p, max_new_tokens, prompt)
        for update in views(*settings, progress, maps=False):
            yield update[:4]

    @guard
    def caption_with_maps(
        photo, model, decoding, num_beams, temperature, top_p, max_new_tokens, prompt,
        progress=gr.Progress(),
    ):  # fmt: skip
        """`caption`, with each word's map in the strip under the words as the caption grows."""
        settings = (photo, model, decoding, num_beams, temperature, top_p, max_new_tokens, prompt)
        yield from views(*settings, progress, maps=True)

    @guard
    def caption_grounding(photo, text, model, layer, progress=gr.Progress()):
        """Each token's map for a caption you give (teacher-forced): decoder `layer` (1-based), or
        0 for the mean of all layers."""
        image = open_photo(photo).image
        load_model(model, topic="captioning", progress=progress_callback(progress))
        found = captioning.ground_caption(image, text, model=model, layer=layer or None)
        about = grounding_notes(layer=found.layer, layers=found.layers, extra=found.notes[1:])
        return grounding_gallery(found), about

    def pick_beam(event: gr.SelectData):
        """The clicked beam's caption (the table's second column), for grounding."""
        row = event.row_value or []
        return str(row[1]) if len(row) > 1 else gr.skip()

    def show_controls(how: str):
        beams_on, sampling_on = how == "beam search", how == "sampling"
        return (
            gr.update(visible=beams_on),
            gr.update(visible=beams_on),
            gr.update(visible=sampling_on),
            gr.update(visible=sampling_on),
        )

    # -- events ---------------------------------------------------------------------------------

    inputs = [lab.photo, model, decoding, beams, temperature, top_p, length, prefix]
    events = dict(show_progress="minimal", **MODEL_EVENT)
    # The page captions with maps; the `caption` endpoint keeps its four outputs for scripts.
    run.click(caption_with_maps, inputs, with_maps, api_visibility="private", **events)
    api_only = gr.Button(visible=False)
    api_only.click(caption, inputs, outputs, api_name="caption", **events)
    prefix.submit(caption_with_maps, inputs, with_maps, api_visibility="private", **events)
    ground_inputs = [lab.photo, words, model, layer]
    ground.click(
        caption_grounding, ground_inputs, [maps, maps_notes], api_name="caption_grounding", **events
    )
    table.select(pick_beam, None, words, api_visibility="private", **LIGHT_EVENT).success(
        caption_grounding, ground_inputs, [maps, maps_notes], api_visibility="private", **events
    )
    decoding.change(
        show_controls,
        decoding,
        [beams, table, temperature, top_p],
        api_visibility="private",
        **LIGHT_EVENT,
    )
    when_shown(lab, TITLE, caption_with_maps, inputs, with_maps, **events)
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
