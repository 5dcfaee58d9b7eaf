"""The CLIP tab's wiring: the batched `zero_shot` endpoint, `similarity` and `robustness`, as a
student's script sees them through gradio_client (tiny CLIPs, real MobileNetV2)."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from demo import clip_tab
from vlmlab import clip
from vlmlab.images import load_image, sample_files

B32 = "openai/clip-vit-base-patch32"


@pytest.fixture(scope="module")
def samples():
    return {name: str(path) for name, path in sample_files().items()}


def confidences(label_output) -> dict[str, float]:
    return {item["label"]: item["confidence"] for item in label_output["confidences"]}


def test_zero_shot_endpoint_returns_probabilities_cosines_and_the_logit_scale(lab_app, samples):
    bars, table, notes = lab_app.client.predict(
        handle_file(samples["coffee"]),
        "cup of coffee, cat\nrocket",
        "a photo of a {}.",
        B32,
        api_name="/zero_shot",
    )
    expected = clip.score_labels(load_image(samples["coffee"]), "cup of coffee, cat\nrocket")
    got = confidences(bars)
    assert got == pytest.approx(dict(expected.ranked()), abs=1e-6)
    rows = table["data"]
    assert [row[0] for row in rows] == [label for label, _ in expected.ranked()]
    for label, probability, cosine, logit in rows:
        assert logit == pytest.approx(cosine * expected.logit_scale, abs=0.01)
    assert f"Logit scale {expected.logit_scale:.2f}" in notes


def test_zero_shot_endpoint_refuses_bad_labels_with_one_sentence(lab_app, samples):
    with pytest.raises(AppError, match="Please type at least one label"):
        lab_app.client.predict(
            handle_file(samples["chelsea"]),
            " ,\n, ",
            "a photo of a {}.",
            B32,
            api_name="/zero_shot",
        )
    with pytest.raises(AppError, match=r"exactly one \{\}"):
        lab_app.client.predict(
            handle_file(samples["chelsea"]), "cat", "no slot here", B32, api_name="/zero_shot"
        )


def test_concurrent_students_each_get_their_own_answer(lab_app, samples, tmp_path):
    # Eight students, eight different photos and label sets, all at once: batched together,
    # never mixed up.
    base = load_image(samples["chelsea"])
    jobs, expected = [], []
    for i in range(8):
        path = tmp_path / f"student{i}.png"
        photo = base.rotate(45 * i, expand=True)
        photo.save(path)
        labels = f"cat, dog, thing {i}" if i % 2 else f"rocket\ncup of coffee\nitem {i}\ncat"
        expected.append(dict(clip.zero_shot(photo, labels)))
        jobs.append(
            lab_app.client.submit(
                handle_file(str(path)), labels, "a photo of a {}.", B32, api_name="/zero_shot"
            )
        )
    for job, want in zip(jobs, expected):
        bars, _, _ = job.result(timeout=120)
        assert confidences(bars) == pytest.approx(want, abs=1e-5)


def test_a_bad_request_in_a_batch_fails_alone(samples):
    bars, tables, notes = clip_tab.classify_batch(
        [samples["chelsea"], samples["coffee"], None],
        ["cat, dog", ",,,", "cat"],
        ["a photo of a {}."] * 3,
        [B32] * 3,
    )
    assert set(bars[0]) == {"cat", "dog"} and tables[0]
    assert bars[1] == {} and "Please type at least one label" in notes[1]
    assert bars[2] == {} and "Please pick a sample photo or upload one first" in notes[2]
    with pytest.raises(gr.Error, match="at least one label"):
        clip_tab.classify_batch([samples["chelsea"]], [" "], ["{}"], [B32])


def test_similarity_endpoint_draws_the_matrix_of_samples_uploads_and_the_photo(
    lab_app, samples, tmp_path
):
    upload = tmp_path / "my_rocket.png"
    Image.open(samples["rocket"]).save(upload)
    heat, notes = lab_app.client.predict(
        handle_file(samples["chelsea"]),
        ["your photo", "coffee"],
        [handle_file(str(upload))],
        "a photo of a cat\na cup of coffee\na rocket",
        B32,
        True,
        True,
        api_name="/similarity",
    )
    assert "3 images × 3 texts" in notes
    assert Image.open(heat).width > 300
    with pytest.raises(AppError, match="at least one image"):
        lab_app.client.predict(
            handle_file(samples["chelsea"]),
            [],
            [],
            "a cat",
            B32,
            False,
            False,
            api_name="/similarity",
        )
    with pytest.raises(AppError, match="not in the list of choices"):  # Gradio checks first
        lab_app.client.predict(
            handle_file(samples["chelsea"]),
            ["../../etc/passwd"],
            [],
            "a cat",
            B32,
            False,
            False,
            api_name="/similarity",
        )


def test_similarity_notes_say_when_pairs_cannot_be_outlined(samples):
    _, notes = clip_tab.compare(
        samples["chelsea"], ["chelsea"], [], "a cat\na dog", B32, False, True
    )
    assert "only with as many texts as images (here 1 and 2)" in notes
    with pytest.raises(gr.Error, match="There is no sample called"):
        clip_tab.compare(samples["chelsea"], ["passwd"], [], "a cat", B32, False, False)
    with pytest.raises(gr.Error, match="at most 16 images"):
        clip_tab.compare(samples["chelsea"], ["chelsea"] * 17, [], "a cat", B32, False, False)


def test_robustness_endpoint_compares_clip_with_the_cnn(lab_app, samples):
    info = lab_app.client.view_api(return_format="dict", print_info=False)
    parameters = info["named_endpoints"]["/robustness"]["parameters"]
    kernel = (
        ["0 -1 0\n-1 5 -1\n0 -1 0"] if parameters[-1]["parameter_name"] == "kernel_text" else []
    )
    figure, notes = lab_app.client.predict(
        handle_file(samples["chelsea"]),
        ["grayscale", "noise"] + (["kernel"] if kernel else []),
        0.5,
        B32,
        "mobilenet_v2",
        *kernel,
        api_name="/robustness",
    )
    assert "CLIP kept its answer for" in notes and "The CNN kept its answer for" in notes
    assert np.asarray(Image.open(figure)).shape[1] > 600
    _, notes = lab_app.client.predict(
        handle_file(samples["chelsea"]),
        ["grayscale"],
        0.5,
        B32,
        "resnet50",
        *kernel,
        api_name="/robustness",
    )
    assert "The CNN could not answer: ResNet-50" in notes  # not on this machine


def test_a_template_set_fills_the_box_one_template_per_line():
    name, templates = next(iter(clip.TEMPLATE_SETS.items()))
    assert clip_tab.templates_of(name).splitlines() == list(templates)
    assert clip_tab.templates_of("no such set") == clip.DEFAULT_TEMPLATE
