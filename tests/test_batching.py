"""One error policy for the batched endpoints (demo/batching.py): in a batch, a bad request gets
its own sentence and the others their answers, through `/classify` and `/zero_shot` alike.

A batch is formed without timing: the model line is held (its one slot counts as taken, see
`lab_load.held_model_line`) until both requests wait in it; released, Gradio hands them to the
batched handler together.
"""

from __future__ import annotations

import logging
import time

import gradio as gr
import pytest
from gradio_client import handle_file
from lab_load import held_model_line

from demo.batching import WARNING, batched
from demo.common import FAULT
from vlmlab import clip, cnn
from vlmlab.errors import LabError
from vlmlab.images import sample_files

BOUND_S = 120.0  # the longest any wait here may take (a bound, not a measurement)
CNN = "mobilenet_v2"  # real ImageNet weights in the test world
B32 = "openai/clip-vit-base-patch32"


def confidences(label_output) -> dict[str, float]:
    return {item["label"]: item["confidence"] for item in label_output["confidences"]}


def batch_of_two(lab_app, api_name: str, good: tuple, bad: tuple):
    """Submit `good` and `bad` while the model line is held; both run as one batch."""
    with held_model_line(lab_app.demo, BOUND_S) as (line, _):
        jobs = [lab_app.client.submit(*args, api_name=api_name) for args in (good, bad)]
        deadline = time.monotonic() + BOUND_S
        while len(line.queue) < 2:
            assert time.monotonic() < deadline, "the two requests never joined the line"
            time.sleep(0.05)
    return [job.result(timeout=BOUND_S) for job in jobs]


def test_classify_serves_the_good_request_and_tells_the_bad_one_why(lab_app, tmp_path):
    chelsea = str(sample_files()["chelsea"])
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"not a photo at all\n")
    good, bad = batch_of_two(
        lab_app, "/classify", (handle_file(chelsea), CNN, 3), (handle_file(str(notes)), CNN, 3)
    )
    expected = dict(cnn.classify(chelsea, CNN, 3))
    assert confidences(good) == pytest.approx(expected, abs=1e-4)
    # Alone, this request would have failed as a whole: told in its label, it was batched.
    assert bad["label"].startswith(WARNING) and "not an image" in bad["label"]


def test_zero_shot_serves_the_good_request_and_tells_the_bad_one_why(lab_app):
    coffee = handle_file(str(sample_files()["coffee"]))
    template = "a photo of a {}."
    (good_bars, good_rows, _), (bad_bars, bad_rows, bad_notes) = batch_of_two(
        lab_app, "/zero_shot", (coffee, "cup of coffee, cat", template, B32),
        (coffee, " ,\n, ", template, B32),
    )  # fmt: skip
    expected = clip.zero_shot(sample_files()["coffee"], "cup of coffee, cat", model=B32)
    assert confidences(good_bars) == pytest.approx(dict(expected), abs=1e-5)
    assert [row[0] for row in good_rows["data"]] == [label for label, _ in expected]
    assert not bad_bars.get("confidences") and not bad_rows["data"]
    assert bad_notes.startswith(WARNING) and "Please type at least one label" in bad_notes


# ---------------------------------------------------------------------------------------------
# The policy itself, on a toy engine: numbers in, their doubles out


def _number(value):
    if not isinstance(value, int):
        raise LabError(f"{value!r} is not a whole number.")
    return value


def _double_all(requests):
    if 13 in requests:  # a fault of ours: its group fails, logged, with the lab's sentence
        raise RuntimeError("unlucky")
    return [LabError("No negatives.") if r < 0 else 2 * r for r in requests]


double = batched(
    _number,
    _double_all,
    show=lambda answer: (answer, ""),
    refuse=lambda sentence: (None, sentence),
    group=lambda request: request % 2,  # odd and even numbers run apart
    name="double",
)


def test_each_request_gets_its_answer_or_its_own_sentence(caplog):
    with caplog.at_level(logging.ERROR, logger="vlmlab"):
        answers, notes = double([1, "x", -2, 4, 13])
    # 13 is odd: its group (1 and 13) fails with the lab's sentence; the even group is served.
    assert answers == [None, None, None, 8, None]
    assert notes == [
        f"{WARNING} {FAULT}",
        f"{WARNING} 'x' is not a whole number.",
        f"{WARNING} No negatives.",
        "",
        f"{WARNING} {FAULT}",
    ]
    assert "double failed" in caplog.text and "unlucky" in caplog.text


def test_a_batch_that_fails_for_one_reason_fails_as_a_whole():
    with pytest.raises(gr.Error, match="No negatives"):
        double([-1])
    with pytest.raises(gr.Error, match="No negatives"):
        double([-1, -3])
    assert double([-1, "y"])[0] == [None, None]  # two reasons: each caller told their own
    assert double.one(21) == (42, "")
    with pytest.raises(gr.Error, match="'z' is not"):
        double.one("z")
