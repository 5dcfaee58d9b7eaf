"""Links that restore a view (vlmlab.links) and the lecture path (vlmlab.lecture): the codec."""

from __future__ import annotations

import re

import pytest

from vlmlab import lecture, links
from vlmlab.lecture import render as lecture_render
from vlmlab.links import ViewState, decode, encode, view_state


def test_every_tab_round_trips():
    views = [
        view_state("pixels", "coffee", top=3, left=4, size=12, space="Lab"),
        view_state("convolution", "camera", kernel="-1 0 1\n-2 0 2\n-1 0 1", padding="zero",
                   stride=2, grayscale=True, flip=False, normalise=True, display="signed"),
        view_state("cnn", "chelsea", model="resnet50", layer="layer3", channel=12, top_k=7),
        view_state("vit", "astronaut", model="facebook/dino-vitb16", layer=3, head="2",
                   query="CLS"),
        view_state("contrastive", steps=200, batch_size=32, lr=0.001, seed=7,
                   learn_temperature=False),
        view_state("clip", "coffee", model="openai/clip-vit-base-patch16", labels="cup\nmug",
                   templates="a sketch of a {}"),
        view_state("captioning", "coffee", decoding="sampling", temperature=0.7, top_p=0.8,
                   max_new_tokens=20),
        view_state("vqa", "coffee", model="Salesforce/blip-vqa-base", question="Is it hot?",
                   top_k=3),
    ]
    for view in views:
        back = decode(encode(view))
        assert back.notes == ()
        assert (back.tab, back.sample, back.settings) == (view.tab, view.sample, view.settings)
    assert decode("?" + encode(views[0])).settings == views[0].settings
    assert set(links.TAB_VIEWS) == {view.tab for view in views}


def test_projector_and_step_pass_through():
    view = ViewState("vit", "chelsea", links.ViTView(layer=2), projector=True, step=7)
    query = encode(view)
    assert "projector=1" in query and "step=7" in query
    back = decode(query)
    assert back.projector is True and back.step == 7
    assert decode("tab=vit").projector is False


def test_an_upload_is_never_in_a_link():
    view = ViewState("cnn", "/tmp/gradio/abc/holiday.jpg", links.CNNView(channel=1), upload=True)
    assert "sample" not in encode(view) and "holiday" not in encode(view)
    assert links.link_notes(view) == (links.UPLOAD_NOTE,)


@pytest.mark.parametrize(
    "query, field",
    [
        ("tab=convolution&kernel=nan%20nan%20nan%0Anan%20nan%20nan%0Anan%20nan%20nan", "kernel"),
        ("tab=convolution&kernel=1%202", "kernel"),
        ("tab=cnn&model=not-a-model", "model"),
        ("tab=vit&model=evil/remote-code", "model"),
        ("tab=pixels&size=1000", "size"),
        ("tab=pixels&top=abc", "top"),
        ("tab=captioning&temperature=inf", "temperature"),
        ("tab=clip&templates=no%20slot", "templates"),
        ("tab=contrastive&lr=50", "lr"),
    ],
)
def test_a_bad_value_is_left_at_its_default_with_a_note(query, field):
    view = decode(query)
    assert getattr(view.settings, field) is None
    assert len(view.notes) == 1 and f"'{field}'" in view.notes[0]


def test_bad_links_load_with_notes_and_never_raise():
    many = "&".join(f"p{i}=1" for i in range(10_000))
    view = decode("tab=pixels&size=5&" + many)
    assert view.settings.size == 5 and any("more than" in n for n in view.notes)
    assert len(view.notes) <= links.MAX_PARAMS + 2

    huge = decode("tab=vqa&question=" + "a" * 100_000 + "&top_k=2")
    assert huge.settings.question is None and huge.settings.top_k is None  # cut before parsing
    assert any("too long" in n for n in huge.notes)

    assert decode("tab=nowhere&sample=moon").tab is None
    assert len(decode("tab=nowhere&sample=moon").notes) == 2
    assert decode("tab=lecture&step=0").step is None
    assert decode("tab=lecture&step=21").step is None
    assert decode("step=20").step == 20
    for junk in ("", "?", "&&&", "=", "tab", "%zz=%zz", None, 42, "tab=cnn&tab=vit"):
        decode(junk)
    assert decode("tab=cnn&tab=vit").tab == "cnn"


def test_script_in_a_label_stays_text_and_notes_never_repeat_values():
    label = "<script>alert(1)</script>\ncat"
    view = decode(encode(view_state("clip", labels=label)))
    assert view.settings.labels == label  # a label is text; the page shows it as text
    view = decode("tab=clip&%3Cscript%3E=1&model=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert view.notes and all("<" not in note and "alert" not in note for note in view.notes)


def test_decode_takes_a_mapping():
    view = decode({"tab": "pixels", "size": "4", "projector": "1"})
    assert view.settings.size == 4 and view.projector


def test_lecture_path_follows_the_slides():
    titles = [step.title for step in lecture.STEPS]
    assert titles[0] == "Pixels as a matrix" and titles[-1] == "Visual question answering"
    assert [step.view().tab for step in lecture.STEPS] == [
        "pixels", "pixels", "convolution", "convolution", "convolution", "cnn", "cnn", "cnn",
        "vit", "vit", "vit", "vit", "vit", "contrastive", "clip", "clip", "clip", "clip",
        "captioning", "vqa",
    ]
    for number, step in enumerate(lecture.STEPS, 1):
        assert step.view().notes == (), step.title
        assert 2 <= len(re.findall(r"[.?!](?:\s|$)", step.text)) <= 3, step.title
        assert decode(lecture.step_link(number)).step == number
    figures = {step.figure for step in lecture.STEPS if step.figure}
    assert figures == set(lecture_render.FIGURES) == {"vit_data", "laion"}
    laion = next(step for step in lecture.STEPS if step.figure == "laion")
    assert laion.view().settings.other_model == lecture.LAION_CLIP


def test_lecture_figures_draw_the_published_numbers():
    figure = lecture_render.draw_vit_data()
    lines = figure.axes[0].get_lines()
    assert [tuple(line.get_ydata()) for line in lines][1] == (73.38, 81.28, 80.73)
    laion = lecture_render.draw_laion()
    widths = sorted(bar.get_width() for bar in laion.axes[0].patches)
    assert widths == [1.27, 2.26, 2.32] and round(sum(widths), 2) == lecture_render.LAION_TOTAL
    assert "Dosovitskiy" in lecture_render.VIT_CAPTION
    assert "Schuhmann" in lecture_render.LAION_CAPTION
