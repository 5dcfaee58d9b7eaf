"""Two CLIPs side by side (inside the CLIP tab): OpenAI's CLIP (400M private pairs) and OpenCLIP
trained on LAION-2B (open), or any two CLIP-family models, on the same photo and labels."""

from __future__ import annotations

import gradio as gr

from .clip_tab import DEFAULT_SAMPLES, YOUR_PHOTO, _gather_images, _markdown
from .common import MODEL_EVENT, Lab, guard, open_photo, progress_callback, view_image
from .own_model import dropdown_choices, model_dropdown
from vlmlab import clip
from vlmlab.clip import pair as clip_pair
from vlmlab.clip import render as clip_render
from vlmlab.models import load_model

LEFT = "openai/clip-vit-base-patch32"
RIGHT = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"


def build(lab: Lab) -> None:
    """The side-by-side accordion (called inside the CLIP tab's layout)."""
    with gr.Accordion("Side by side: OpenAI's CLIP and LAION's", open=False) as box:
        gr.Markdown(
            "The same photo and labels through two CLIP models. OpenAI's learned from 400 million "
            "private web pairs; OpenCLIP's from LAION-2B, open for anyone to study."
        )
        with gr.Row():
            left = _model_dropdown("left model", LEFT, "clip-pair-left")
            right = _model_dropdown("right model", RIGHT, "clip-pair-right")
        labels = gr.Textbox(
            clip.DEFAULT_LABELS, lines=3, max_lines=16, label="Labels", elem_id="clip-pair-labels"
        )
        texts = gr.Textbox(
            "\n".join(clip.SAMPLE_CAPTIONS.get(n, "") for n in DEFAULT_SAMPLES).strip(),
            lines=4,
            max_lines=16,
            label="Texts for the similarity matrices (one per line; images: the samples)",
            elem_id="clip-pair-texts",
        )
        with gr.Row():
            run = gr.Button("Zero-shot with both", variant="primary")
            run_matrix = gr.Button("Similarity with both")
        with gr.Row():
            with gr.Column():
                left_bars = gr.Label(num_top_classes=5, label="left")
                left_heat = view_image("left: similarity")
                left_notes = gr.Markdown(elem_id="clip-pair-left-notes")
            with gr.Column():
                right_bars = gr.Label(num_top_classes=5, label="right")
                right_heat = view_image("right: similarity")
                right_notes = gr.Markdown(elem_id="clip-pair-right-notes")

    lab.shared["clip_pair"] = (box, left, right, [left_bars, left_notes, right_bars, right_notes])
    run.click(
        guard(zero_shot_pair),
        [lab.photo, labels, left, right],
        [left_bars, left_notes, right_bars, right_notes],
        api_name="zero_shot_pair",
        **MODEL_EVENT,
    )
    run_matrix.click(
        guard(similarity_pair),
        [lab.photo, texts, left, right],
        [left_heat, left_notes, right_heat, right_notes],
        api_name="similarity_pair",
        **MODEL_EVENT,
    )


def _model_dropdown(label: str, value: str, elem_id: str) -> gr.Dropdown:
    return model_dropdown(
        "clip",
        dropdown_choices("clip"),
        value=value,
        label=label,
        allow_custom_value=True,  # any CLIP-family id by name; the engine checks it
        elem_id=elem_id,
    )


def _column_text(column: clip_pair.Column, lines: list[str]) -> str:
    return _markdown([f"{column.title} ({column.model})", column.trained_on, *lines])


def zero_shot_pair(photo, labels, model, other_model, progress=gr.Progress()):  # noqa: B008
    """Two models, one photo, the same labels: each scored as it was trained."""
    image = open_photo(photo).image
    for name in (model, other_model):
        load_model(name, topic="clip", progress=progress_callback(progress))
    columns = clip_pair.zero_shot_pair(image, labels, (model, other_model))
    outputs = []
    for column in columns:
        outputs += [
            dict(column.result.ranked()),
            _column_text(column, clip_render.describe_zero_shot(column.result)),
        ]
    return tuple(outputs)


def similarity_pair(photo, texts, model, other_model, progress=gr.Progress()):  # noqa: B008
    """Two similarity matrices over the same images (the photo and the samples) and texts."""
    images, names = _gather_images(photo, list(dict.fromkeys([YOUR_PHOTO, *DEFAULT_SAMPLES])), None)
    for name in (model, other_model):
        load_model(name, topic="clip", progress=progress_callback(progress))
    columns = clip_pair.similarity_pair(images, texts, (model, other_model))
    outputs = []
    for column in columns:
        heat = clip_render.draw_similarity(column.result, images, names, pairs=False)
        outputs += [heat, _column_text(column, clip_render.describe_similarity(column.result))]
    return tuple(outputs)



