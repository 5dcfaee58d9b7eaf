"""The Captioning tab: BLIP describes the photo word by word, each word coloured by its
probability."""

from __future__ import annotations

import gradio as gr

from .common import (
    LIGHT_EVENT,
    MODEL_EVENT,
    Lab,
    guard,
    open_photo,
    progress_callback,
    when_shown,
)
from vlmlab import captioning
from vlmlab.captioning_render import BEAM_HEADERS, beam_rows, caption_html, caption_notes
from vlmlab.models import choices, get_spec, load_model

TITLE = "Captioning"

INTRO = """**Image captioning**: "a red truck is parked on a street lined with trees". BLIP
(Li et al., 2022) encodes the photo with a Vision Transformer, then a text decoder writes the
caption one token at a time, each time choosing from a probability distribution over its
vocabulary. **Greedy** takes the most likely token, **beam search** keeps the *n* best partial
captions, **sampling** draws a token (temperature flattens or sharpens the distribution, top-p
keeps only the likeliest words). A **prefix** ("a picture of") is a start the caption must
continue."""


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
    outputs = [text, table, view, notes]

    # -- handlers: an engine call and a few lines each ------------------------------------------

    @guard
    def caption(
        path, name, how, beam_count, heat, nucleus, max_tokens, start, progress=gr.Progress()
    ):
        """Caption the photo; streams the growing caption, then the final one with every number."""
        image = open_photo(path).image
        load_model(name, topic="captioning", progress=progress_callback(progress))
        settings = captioning.settings_for(
            how, num_beams=beam_count, temperature=heat, top_p=nucleus, max_new_tokens=max_tokens
        )
        waiting = "searching the beams…" if settings["num_beams"] > 1 else "looking at the photo…"
        yield "", [], f'<div style="opacity:.6">BLIP is {waiting}</div>', ""
        for part in captioning.caption_stream(image, model=name, prompt=start, **settings):
            html = caption_html(part, show_beams=False)
            yield part.text, beam_rows(part), html, caption_notes(part) if part.done else ""

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
    run.click(caption, inputs, outputs, api_name="caption", **events)
    prefix.submit(caption, inputs, outputs, api_visibility="private", **events)
    decoding.change(
        show_controls,
        decoding,
        [beams, table, temperature, top_p],
        api_visibility="private",
        **LIGHT_EVENT,
    )
    when_shown(lab, TITLE, caption, inputs, outputs, **events)
