"""The VQA tab in Jupyter: questions about one photo, each answered with bars for the model's
scores, and where in the photo the model looked to answer. Same engine calls as the Gradio tab
(`vlmlab.vqa`, `vlmlab.vqa.render`)."""

from __future__ import annotations

import html

import ipywidgets as widgets

from vlmlab import vqa
from vlmlab.vqa import render as vqa_render
from vlmlab.errors import LabError
from vlmlab.images import ImageSource, load_image
from vlmlab.models import choices, get_spec
from vlmlab.vqa.render import describe_answer_grounding, draw_answer_grounding
from vlmlab.render import error_html

from .captioning import thumbnail_png
from .pixels import row
from .figures import Keepable
from .links import Linkable


class QuestionBox(Linkable, Keepable, widgets.VBox):
    """Questions (one per line) in, each question's answers out as bars.

    Switch the model to compare ViLT, which picks from its answer list, with BLIP, which writes.
    """

    # widget.link() and QuestionBox.from_link(link): see widgets/links.py
    LINK_TAB = "vqa"
    FIGURES = {"looked": "where it looked"}
    LINK_INIT = {"model": "model", "question": "questions", "top_k": "top_k"}
    LINK_CONTROLS = {"model": "model", "question": "questions", "top_k": "top_k"}

    def __init__(
        self,
        image: ImageSource,
        questions: str = vqa.EXAMPLE_QUESTIONS,
        *,
        model: str = vqa.DEFAULT_MODEL,
        top_k: int = 5,
    ):
        self.image = load_image(image)
        self.questions = widgets.Textarea(
            questions,
            description="questions",
            rows=5,
            continuous_update=False,
            layout=widgets.Layout(width="28em"),
        )
        self.model = widgets.Dropdown(options=choices("vqa"), value=model, description="model")
        self.top_k = widgets.IntSlider(
            top_k, min=1, max=vqa.MAX_TOP_K, description="answers", continuous_update=False
        )
        self.ask = widgets.Button(description="ask", icon="question")
        self.picture = widgets.Image(value=thumbnail_png(self.image), format="png")
        self.view = widgets.HTML()
        self.notes = widgets.HTML()
        self.looked = widgets.Image(format="png")  # where it looked, beside the bars
        self.looked_notes = widgets.HTML()
        self.sheet: vqa.AnswerSheet | None = None  # the last answers shown
        for control in (self.questions, self.model, self.top_k):
            control.observe(self._show, "value")
        self.ask.on_click(self._show)
        self._show()
        controls = widgets.VBox([self.questions, self.model, self.top_k, self.ask])
        looked = widgets.VBox([self.looked, self.looked_notes])
        super().__init__(
            [row([self.picture, controls]), row([self.view, looked]), self.notes]
        )

    def _show(self, _change=None) -> None:
        self.top_k.disabled = get_spec(self.model.value, "vqa").kind != "vilt"  # BLIP writes one
        try:
            self.sheet = vqa.answer_questions(
                self.image, self.questions.value, model=self.model.value, top_k=self.top_k.value
            )
        except LabError as error:
            self.view.value = ""  # no stale answer beside the error
            self.notes.value = error_html(error)
            return
        self.view.value = vqa_render.answers_html(self.sheet)
        self.notes.value = "<br>".join(html.escape(note) for note in self.sheet.notes)
        try:
            found = vqa.ground_answers(self.image, self.questions.value, model=self.model.value)
        except LabError as error:
            self.looked_notes.value = html.escape(str(error))
            return
        self.looked.value = thumbnail_png(draw_answer_grounding(found), side=900)
        self.looked_notes.value = "<br>".join(
            html.escape(line) for line in describe_answer_grounding(found)
        )
