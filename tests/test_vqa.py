"""VQA: ViLT's answers are the sigmoid of its logits, top-k in order, one batch for many
questions; BLIP's answer equals `generate` with its sequence probability; bad questions get a
clear sentence."""

from __future__ import annotations

import math
import re

import numpy as np
import gradio as gr
import pytest
import torch

from vlmlab import vqa
from vlmlab.vqa import render as vqa_render
from vlmlab.errors import LabError
from vlmlab.models import load_model

VILT = "dandelin/vilt-b32-finetuned-vqa"
BLIP = "Salesforce/blip-vqa-base"


def vilt_scores(image, question: str) -> torch.Tensor:
    """ViLT as its model card uses it: the processor, one forward, the logits."""
    model = load_model(VILT, topic="vqa")
    inputs = model.processor(images=image, text=question, return_tensors="pt")
    with torch.inference_mode():
        return model.model(**model.to_device(inputs)).logits[0].float()


def test_vilt_answers_are_the_sigmoid_of_its_logits_best_first(chelsea):
    answers = vqa.answer(chelsea, "What animal is this?", model=VILT, top_k=5)
    logits = vilt_scores(chelsea, "What animal is this?")
    expected = torch.sigmoid(logits).topk(5)
    labels = load_model(VILT, topic="vqa").model.config.id2label
    assert [a for a, _ in answers] == [labels[int(i)] for i in expected.indices]
    np.testing.assert_allclose([s for _, s in answers], expected.values.numpy(), atol=1e-5)
    scores = [s for _, s in answers]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)


def test_vilt_batches_questions_and_gets_what_one_at_a_time_gets(coffee):
    questions = ["What is in the cup?", "Is it hot?", "What color is the table?"]
    sheet = vqa.answer_questions(coffee, "\n".join(questions), model=VILT, top_k=3)
    assert [item.question for item in sheet.items] == questions and not sheet.generative
    for item, question in zip(sheet.items, questions):
        alone = vqa.answer(coffee, question, model=VILT, top_k=3)
        assert [a for a, _ in item.answers] == [a for a, _ in alone]
        np.testing.assert_allclose([s for _, s in item.answers], [s for _, s in alone], atol=1e-5)


def test_vilt_meaning_says_the_scores_need_not_sum_to_one(chelsea):
    sheet = vqa.answer_questions(chelsea, ["Is it a cat?"], model=VILT, top_k=10)
    labels = len(load_model(VILT, topic="vqa").model.config.id2label)
    assert f"each of its {labels:,} answers on its own" in sheet.meaning
    assert "sigmoid" in sheet.meaning and "need not add up to 1" in sheet.meaning
    assert sum(score for _, score in sheet.items[0].answers) > 1  # here they don't


def test_blip_answer_equals_generate_with_its_sequence_probability(chelsea):
    model = load_model(BLIP, topic="vqa")
    inputs = model.processor(images=chelsea, text="How many cats are there?", return_tensors="pt")
    with torch.inference_mode():
        out = model.model.generate(
            **model.to_device(inputs),
            max_new_tokens=vqa.ANSWER_TOKENS,
            output_scores=True,
            return_dict_in_generate=True,
        )
    steps = model.model.text_decoder.compute_transition_scores(
        out.sequences, out.scores, normalize_logits=True
    )
    ((text, probability),) = vqa.answer(chelsea, "How many cats are there?", model=BLIP)
    assert text == model.processor.tokenizer.decode(out.sequences[0], skip_special_tokens=True)
    assert math.isclose(probability, math.exp(float(steps.sum())), rel_tol=1e-4)
    assert 0 < probability <= 1


def test_blip_answers_several_questions_like_one_at_a_time(coffee):
    questions = ["What is this?", "Is it hot?"]
    sheet = vqa.answer_questions(coffee, questions, model=BLIP, top_k=5)
    assert sheet.generative and "probability of that whole answer" in sheet.meaning
    for item, question in zip(sheet.items, questions):
        assert len(item.answers) == 1  # BLIP writes one answer
        (alone,) = vqa.answer(coffee, question, model=BLIP)
        assert item.answers[0][0] == alone[0]
        assert item.answers[0][1] == pytest.approx(alone[1], rel=1e-4)


# ---------------------------------------------------------------------------------------------
# Input checks


@pytest.mark.parametrize(
    "question, settings, message",
    [
        ("   \n ", {}, "Please type a question about the photo"),
        ("\x00\x01", {}, "Please type a question about the photo"),
        (None, {}, "Please type a question about the photo"),
        (7, {}, "The question must be text"),
        ("Is it a cat?", dict(top_k=0), "number of answers must be a whole number from 1 to 10"),
        ("Is it a cat?", dict(top_k=11), "number of answers must be a whole number from 1 to 10"),
        ("Is it a cat?", dict(top_k=2.5), "number of answers must be a whole number"),
        ("Is it a cat?", dict(model="Salesforce/blip-image-captioning-base"), "Unknown model"),
    ],
)
def test_bad_questions_and_settings_get_a_clear_sentence(chelsea, question, settings, message):
    with pytest.raises(LabError, match=message):
        vqa.answer(chelsea, question, **settings)


def test_at_most_ten_questions_and_none_empty(chelsea):
    with pytest.raises(LabError, match="at most 10 questions"):
        vqa.answer_questions(chelsea, "\n".join(f"Is it {n}?" for n in range(11)), model=VILT)
    with pytest.raises(LabError, match="at least one question"):
        vqa.answer_questions(chelsea, "\n \n", model=VILT)
    with pytest.raises(LabError, match="must be text"):
        vqa.answer_questions(chelsea, ["Is it a cat?", 3], model=VILT)


def test_questions_are_stripped_deduplicated_and_kept_whole_with_commas(chelsea):
    sheet = vqa.answer_questions(
        chelsea,
        "  Is it a cat,  or a dog?  \nis it a cat, or a dog?\n\nWhat color is it?",
        model=VILT,
    )
    assert [item.question for item in sheet.items] == [
        "Is it a cat, or a dog?",
        "What color is it?",
    ]


@pytest.mark.parametrize("name", [VILT, BLIP])
def test_a_question_longer_than_the_text_limit_is_cut_with_a_note(chelsea, name):
    from vlmlab.captioning import text_limit

    limit = text_limit(load_model(name, topic="vqa"))  # 40 for ViLT (real too), 64 tiny BLIP
    long = "is the cat on the table " * limit
    sheet = vqa.answer_questions(chelsea, [long, "Is it a cat?"], model=name, top_k=3)
    cut, short = sheet.items
    assert long.startswith(cut.question) and len(cut.question) < len(long)
    assert f"this model reads {limit}" in cut.note and cut.answers
    assert short.note == "" and sheet.notes == (cut.note,)


# ---------------------------------------------------------------------------------------------
# Drawing, the widget and the Gradio tab


def test_answers_html_draws_a_bar_per_answer_and_escapes_questions(chelsea):
    sheet = vqa.answer_questions(chelsea, "Is <b>it</b> a cat?", model=VILT, top_k=4)
    page = vqa_render.answers_html(sheet)
    assert "&lt;b&gt;it&lt;/b&gt;" in page and "<b>it" not in page
    widths = [float(w) for w in re.findall(r"width:([\d.]+)%", page)]
    expected = [100 * s for _, s in sheet.items[0].answers]
    np.testing.assert_allclose(widths, expected, atol=0.06)
    assert "need not add up to 1" in page
    rows = vqa_render.answer_rows(sheet)
    assert [row[1] for row in rows] == [a for a, _ in sheet.items[0].answers]


def test_question_box_widget_answers_again_when_questions_change(chelsea):
    from widgets.vqa import QuestionBox

    box = QuestionBox(chelsea, "What animal is this?", top_k=3)
    assert "What animal is this?" in box.view.value and not box.top_k.disabled
    box.questions.value = "Is it sleeping?\nWhat color is it?"
    assert "Is it sleeping?" in box.view.value and len(box.sheet.items) == 2
    box.model.value = BLIP
    assert box.top_k.disabled and box.sheet.generative
    box.questions.value = " "
    assert "at least one question" in box.notes.value and box.view.value == ""


@pytest.fixture(scope="module")
def tab_client(launch_tabs):
    """Just the VQA tab, launched on loopback, and a gradio_client for it."""
    with launch_tabs(only=('vqa',)) as app:
        yield app.client


def test_answer_endpoint_returns_the_table_and_the_bars(tab_client, chelsea):
    from gradio_client import handle_file

    from vlmlab.images import sample_files

    photo = handle_file(str(sample_files()["chelsea"]))
    questions = "What animal is this?\nIs it sleeping?"
    table, view, notes = tab_client.predict(photo, questions, VILT, 3, api_name="/answer")
    expected = vqa.answer_questions(chelsea, questions, model=VILT, top_k=3)
    rows = vqa_render.answer_rows(expected)
    assert [row[:2] for row in table["data"]] == [row[:2] for row in rows]
    assert "Q: Is it sleeping?" in view and notes == ""
    with pytest.raises(Exception, match="at most 10 questions"):
        tab_client.predict(
            photo, "\n".join(f"q{n}?" for n in range(12)), VILT, 3, api_name="/answer"
        )


def test_the_tab_shows_answers_and_where_it_looked_together():
    from demo import vqa_tab
    from vlmlab.images import sample_files

    photo = str(sample_files()["chelsea"])
    questions = "What animal is this?\nIs it sleeping?"
    shown = vqa_tab.answer_and_grounding(photo, questions, VILT, 2, None)
    assert set(shown) == {*vqa_tab.ANSWER_VIEWS, *vqa_tab.GROUNDING_VIEWS}
    expected = vqa.answer_questions(sample_files()["chelsea"], questions, model=VILT, top_k=2)
    assert shown["table"] == vqa_render.answer_rows(expected)
    assert shown["looked"].width > 0 and shown["looked_notes"]
    with pytest.raises(gr.Error, match="Please pick a sample photo"):
        vqa_tab.answer(None, questions, VILT, 2, None)
