"""Bad input inside the Jupyter widgets: the same sentence as the tabs (the engine's LabError),
shown in the widget, never a traceback in the cell; a missing model is said inside the widget."""

from __future__ import annotations

import html

import pytest

from vlmlab import captioning, clip, vqa
from vlmlab.errors import LabError
from vlmlab.kernels import cells_to_array, parse_kernel
from vlmlab.kernels.layer import parse_filters
from vlmlab.text import MAX_TEXT_CHARS


def _sentence(call) -> str:
    """What the tab says for the same input: the engine's own sentence, escaped as HTML."""
    with pytest.raises(LabError) as raised:
        call()
    return html.escape(str(raised.value))


def test_kernel_explorer_says_why_a_kernel_is_refused(chelsea):
    from vlmlab.widgets.kernels import KernelExplorer

    explorer = KernelExplorer(chelsea, "sharpen")
    shown = explorer.result.value
    explorer.text.value = "1 2 3\n4 5"  # ragged rows
    assert _sentence(lambda: parse_kernel("1 2 3\n4 5")) in explorer.status.value
    explorer.grid.children[4].value = "five"  # one grid cell that is not a number
    rows = explorer._cells()
    assert _sentence(lambda: cells_to_array(rows)) in explorer.status.value
    assert explorer.result.value == shown  # the last good output stays


def test_conv_layer_explorer_says_why_filters_are_refused(chelsea):
    from vlmlab.widgets.kernels import ConvLayerExplorer

    layer = ConvLayerExplorer(chelsea)
    layer.filters.value = "1 2\n3"
    assert _sentence(lambda: parse_filters("1 2\n3")) in layer.shapes.value


def test_zero_shot_widget_says_why_labels_are_refused(chelsea):
    from vlmlab.widgets.clip import ZeroShotClassifier

    classifier = ZeroShotClassifier(chelsea, "cat\ndog")
    classifier.labels.value = " \n , "
    assert _sentence(lambda: clip.score_labels(chelsea, " \n , ")) in classifier.notes.value


def test_question_box_says_why_questions_are_refused(chelsea):
    from vlmlab.widgets.vqa import QuestionBox

    box = QuestionBox(chelsea, "What animal is this?")
    too_many = "\n".join(f"Question {n}?" for n in range(40))
    box.questions.value = too_many
    assert _sentence(lambda: vqa.answer_questions(chelsea, too_many)) in box.notes.value
    assert box.view.value == ""


def test_captioner_says_why_a_prefix_is_refused(chelsea):
    from vlmlab.widgets.captioning import Captioner

    captioner = Captioner(chelsea)
    long_prefix = "a photo of " * (MAX_TEXT_CHARS // 10)
    captioner.prefix.value = long_prefix
    assert _sentence(lambda: captioning.caption(chelsea, prompt=long_prefix)) in (
        captioner.notes.value
    )


def test_model_widgets_say_a_missing_model_inside_themselves(chelsea):
    """AlexNet's weights are not in the test world: the widget shows the sentence, no traceback."""
    from vlmlab import cnn
    from vlmlab.widgets.cnn import FeatureMapBrowser, FilterGallery

    expected = _sentence(lambda: cnn.capture_features(chelsea, "alexnet"))
    for widget in (FeatureMapBrowser(chelsea, "alexnet"), FilterGallery("alexnet")):
        assert [expected in child.value for child in widget.children] == [True]
    assert cnn.first_available(["alexnet"], otherwise="alexnet") == "alexnet"
    assert cnn.first_available(["alexnet", "mobilenet_v2"], otherwise="alexnet") == "mobilenet_v2"


def test_notebook_cells_pick_a_model_that_is_here_and_say_when_none_is(capsys):
    """AlexNet's weights are not in the test world, MobileNetV2's are: `pick` falls back to it,
    and `ready` shows the sentence in a widget (False: the cell skips its work)."""
    from vlmlab.widgets.notebook import pick, ready

    assert pick("cnn") == "mobilenet_v2"  # the topic's models, its default (AlexNet) first
    assert pick("cnn", "alexnet", "mobilenet_v2") == "mobilenet_v2"
    assert pick("cnn", "alexnet", "vgg16") == "alexnet"  # none here: the lecture's own
    assert pick("captioning") == captioning.DEFAULT_MODEL  # here: the default itself
    assert ready("mobilenet_v2", captioning.DEFAULT_MODEL) is True
    assert capsys.readouterr().out == ""
    assert ready("mobilenet_v2", "alexnet") is False
    shown = capsys.readouterr().out  # outside a notebook, display() prints the widget
    assert "HTML(" in shown and "AlexNet" in shown and "is not on this machine" in shown
