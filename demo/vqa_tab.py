"""The VQA tab: questions about the photo, each answered with the model's confidence as bars,
and beside the bars where in the photo the model looked to answer."""

from __future__ import annotations

import gradio as gr

from . import links
from .common import (
    MODEL_EVENT,
    Lab,
    Views,
    guard,
    open_photo,
    progress_callback,
    when_shown,
)
from .figures import keep_figures
from vlmlab import vqa
from vlmlab.vqa import render as vqa_render
from vlmlab.backend import backend
from vlmlab.models import choices, get_spec, load_model
from vlmlab.vqa.render import describe_answer_grounding, draw_answer_grounding

TITLE = "VQA"

INTRO = f"""**Visual question answering**: "Is this truck considered vintage?", "What kind of
tree is behind the truck?" Ask up to {vqa.MAX_QUESTIONS} questions about the same photo, one per
line. **ViLT** (Kim et al., 2021) reads the photo and the question together and *picks* from a
fixed list of answers, scoring every answer on its own; **BLIP** (Li et al., 2022) *writes* its
answer token by token. Beside the answers, **where it looked**: for ViLT the relevance of its
answer's score to each patch, for BLIP how each question word attended to the patches."""


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            questions = gr.Textbox(
                vqa.EXAMPLE_QUESTIONS,
                label=f"Questions (one per line, up to {vqa.MAX_QUESTIONS})",
                lines=5,
                max_length=5000,
                elem_id="vqa-questions",
            )
            model = gr.Dropdown(
                [(get_spec(name).title, name) for name in choices("vqa")],
                value=vqa.DEFAULT_MODEL,
                label="VQA model",
            )
            top_k = gr.Slider(
                1, vqa.MAX_TOP_K, value=5, step=1, label="answers per question (ViLT)"
            )
            run = gr.Button("Answer", variant="primary")
        with gr.Column(scale=2):
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    view = gr.HTML(elem_id="vqa-answers")
                    notes = gr.Markdown(elem_id="vqa-notes")
                with gr.Column(scale=1, min_width=300):
                    looked = gr.Image(
                        type="pil",
                        format="png",
                        label="Where it looked to answer",
            interactive=False,
                        elem_id="vqa-grounding",
                    )
                    looked_notes = gr.Markdown(elem_id="vqa-grounding-notes")
            with gr.Accordion("The numbers", open=False):
                table = gr.Dataframe(
                    headers=vqa_render.ANSWER_HEADERS,
                    interactive=False,
                    wrap=True,
                    elem_id="vqa-table",
                )
    keep_figures("vqa", [(looked, "where it looked", ["model"])], {"model": model})
    views = Views(
        table=table, view=view, notes=notes, looked=looked, looked_notes=looked_notes
    )
    answers, where = views.pick(*ANSWER_VIEWS), views.pick(*GROUNDING_VIEWS)

    # -- events ---------------------------------------------------------------------------------

    inputs = [lab.photo, questions, model, top_k]
    run.click(
        answers.wire(answer), inputs, answers.outputs, api_name="answer", **MODEL_EVENT
    ).success(
        where.wire(grounding),
        [lab.photo, questions, model],
        where.outputs,
        api_name="vqa_grounding",
        **MODEL_EVENT,
    )
    when_shown(
        lab, TITLE, views.wire(answer_and_grounding), inputs, views.outputs, **MODEL_EVENT
    )
    links.register(
        lab,
        "vqa",
        {"model": model, "question": questions, "top_k": top_k},
        links.shown_step(lab, TITLE),
    )


# ---------------------------------------------------------------------------------------------
# Handlers: component values → one engine call → values by name (`Views.wire` maps them)

ANSWER_VIEWS = ("table", "view", "notes")
GROUNDING_VIEWS = ("looked", "looked_notes")


@guard
def answer(photo, questions, model, top_k, progress=gr.Progress()) -> dict:  # noqa: B008
    """Answer every question about the photo: the table, the bars, and any notes."""
    image = open_photo(photo).image
    backend().load(load_model, model, topic="vqa", progress=progress_callback(progress))
    sheet = backend().answer_questions(image, questions, model=model, top_k=top_k)
    return {
        "table": vqa_render.answer_rows(sheet),
        "view": vqa_render.answers_html(sheet),
        "notes": "\n\n".join(sheet.notes),
    }


@guard
def grounding(photo, questions, model, progress=gr.Progress()) -> dict:  # noqa: B008
    """Where the model looked for each question's answer: the maps and what they are."""
    image = open_photo(photo).image
    load_model(model, topic="vqa", progress=progress_callback(progress))
    found = vqa.ground_answers(image, questions, model=model)
    return {
        "looked": draw_answer_grounding(found),
        "looked_notes": "\n\n".join(describe_answer_grounding(found)),
    }


@guard
def answer_and_grounding(
    photo, questions, model, top_k, progress=gr.Progress()  # noqa: B008 - Gradio injects it
) -> dict:
    """Both views at once (the tab shows its answer when it is opened)."""
    return {
        **answer(photo, questions, model, top_k, progress),
        **grounding(photo, questions, model, progress),
    }
