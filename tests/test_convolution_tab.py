"""The Convolution tab: its handlers, and its public endpoints `apply_kernel` and `conv_layer`
through gradio_client (the engine itself: tests/test_kernels.py)."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from vlmlab.errors import LabError
from vlmlab.kernels import LECTURE_KERNEL, PRESETS, format_kernel, parse_kernel
from vlmlab.kernels.layer import LAYER_PRESET, format_filters


def test_tab_handlers(tmp_path):
    from demo import kernels_tab

    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (32, 48, 3), np.uint8)).save(path)
    shown = kernels_tab.show_result(
        str(path), "1 2 1\n2 4 2\n1 2 1", "zero", 2, False, False, "minmax", True
    )
    assert shown["result"].size == (24, 16) and "16×24 out" in shown["arithmetic"]
    example = kernels_tab.lecture_example()
    assert parse_kernel(example["kernel_text"]).tolist() == LECTURE_KERNEL.tolist()
    assert example["padding"] == "valid"
    text, padding, stride, flip, normalise, cells, state = (
        example[name] for name in kernels_tab.LECTURE_SETTINGS[:7]
    )
    views = kernels_tab.refresh(
        state, str(path), cells, text, padding, stride, False, flip, "clip", normalise
    )
    assert set(views) == set(kernels_tab.LIVE_VIEWS)
    image, status, matrix_text, html, picture, preset = (
        views[name]
        for name in ("result", "status", "matrix_text", "step_view", "matrix_input", "preset")
    )
    assert preset == "custom"  # the lecture's kernel: the dropdown no longer says "sharpen"
    assert image.size == (46, 30) and status == "" and "3×3 out" in matrix_text
    assert state == ("matrix", 2, 0) and "sum = <b>4</b>" in html and picture is not None
    views = kernels_tab.refresh(
        state, str(path), cells, "1 2\n3", padding, stride, False, flip, "clip", normalise
    )
    assert "needs the same number of values" in views["status"]
    assert "result" not in views and "grid" not in views  # the last good ones stay
    step_right = kernels_tab._mover("→ right")
    assert step_right(("photo", -1, -1), str(path), cells, text, "zero", 2, False) == (
        "photo",
        8,
        13,
    )  # from the middle of the 16×24 output
    assert step_right(("matrix", 2, 2), str(path), cells, text, "valid", 1, False) == (
        "matrix",
        2,
        2,
    )  # already at the right edge
    mirrored = kernels_tab.text_to_grid(format_kernel(PRESETS["emboss"]), [["0"]])
    grid, size, preset = mirrored["grid"], mirrored["size"], mirrored["preset"]
    assert "'emboss' preset" in grid["label"] and size == "3×3" and preset == "emboss"
    # Another kernel (the lecture's, CNN filters…) is no longer the preset the dropdown named.
    assert kernels_tab.text_to_grid("1 2 3\n0 0 0\n-1 -2 -1")["preset"] == "custom"
    # Picking the preset the text already holds leaves the text as the user wrote it.
    assert kernels_tab.pick_preset("emboss", format_kernel(PRESETS["emboss"])) == gr.skip()
    assert kernels_tab.pick_preset("emboss", "1") == format_kernel(PRESETS["emboss"])
    assert kernels_tab.grid_to_text([["1", "2", "1"]] * 3)[0] == format_kernel(
        np.array([[1, 2, 1]] * 3)
    )
    with pytest.raises(LabError, match="The grayscale setting must be true or false"):
        kernels_tab.show_result(str(path), "1 2 1\n2 4 2\n1 2 1", "zero", 1, "yes", False, "clip")


def test_a_cleared_photo_is_said_in_place_and_the_worked_example_still_works():
    from demo import kernels_tab
    from demo.common import NO_PHOTO

    example = kernels_tab.lecture_example()
    text, padding, stride, flip, normalise, cells, state = (
        example[name] for name in kernels_tab.LECTURE_SETTINGS[:7]
    )
    views = kernels_tab.refresh(
        state, None, cells, text, padding, stride, False, flip, "clip", normalise
    )
    image, status, matrix_text, html, picture, preset = (
        views[name]
        for name in ("result", "status", "matrix_text", "step_view", "matrix_input", "preset")
    )
    assert image is None and NO_PHOTO in status  # no error raised: one sentence, in the tab
    assert preset == "custom"  # the lecture's kernel is no preset: the dropdown says so
    assert "3×3 out" in matrix_text and "sum = <b>4</b>" in html and picture is not None
    step = kernels_tab.show_step(("photo", 1, 1), None, cells, text, "zero", 1, False, False, False)
    assert NO_PHOTO in step["step_view"]


@pytest.fixture(scope="module")
def client(launch_tabs):
    """Just the two tabs of this topic, launched on loopback, and a gradio_client for them."""
    with launch_tabs(only=("pixels", "convolution")) as app:
        yield app.client


def test_the_apply_kernel_endpoint(client, tmp_path):
    from gradio_client import handle_file
    from skimage import data

    path = tmp_path / "photo.png"
    pixels = data.astronaut()[100:140, 180:240]  # 40×60, a real photo's detail
    Image.fromarray(pixels).save(path)
    image, text = client.predict(
        handle_file(str(path)),
        "0 0 0\n0 1 0\n0 0 0",
        "valid",
        2,
        False,
        False,
        "clip",
        api_name="/apply_kernel",
    )
    assert "40×60 in → 19×29 out" in text
    with Image.open(image) as result:
        assert result.size == (29, 19)
        expected = pixels[1:-1:2, 1:-1:2].astype(int)
        assert np.abs(np.asarray(result.convert("RGB"), int) - expected).mean() < 5  # JPEG 90
    with pytest.raises(Exception, match="this one is 2×2"):
        client.predict(
            handle_file(str(path)),
            "1 2\n3 4",
            "reflect",
            1,
            False,
            False,
            "clip",
            api_name="/apply_kernel",
        )
    maps, shapes = client.predict(
        handle_file(str(path)),
        format_filters(LAYER_PRESET),
        "0 0 0 0",
        "reflect",
        1,
        True,
        api_name="/conv_layer",
    )
    assert "output 4×40×60" in shapes and maps


def test_the_layer_filters_are_small_grids_that_write_the_text():
    from demo import conv_layer
    from vlmlab.kernels.layer import LAYER_PRESET, format_filters, parse_filters

    text = format_filters(LAYER_PRESET)
    grids = conv_layer.text_to_filter_grids(text)
    assert grids[0]["value"][0] == ["-1/3", "0", "1/3"] * 3  # R, G, B blocks side by side
    assert grids[0]["headers"][:4] == ["R −1", "R 0", "R +1", "G −1"]
    assert "vertical edges" in grids[0]["label"] and "brightness" in grids[3]["label"]
    # A cell edited in filter 2's grid changes filter 2 only, in the text the layer runs on.
    cells = [row[:] for row in grids[1]["value"]]
    cells[0][0] = "5"
    new_text, problem = conv_layer._grids_to_text(1)(text, cells)
    filters = parse_filters(new_text)
    assert problem == "" and filters[1, 0, 0, 0] == 5
    assert np.allclose(np.delete(filters, 1, axis=0), np.delete(LAYER_PRESET, 1, axis=0))
    cells[1] = cells[1][:4]
    with pytest.raises(LabError, match="fill every cell"):
        conv_layer._grids_to_text(1)(text, cells)
    # Two filters as text: two grids, the others hidden; unnamed once they are not the preset.
    grids = conv_layer.text_to_filter_grids("1 0 0\n0 1 0\n0 0 1\n---\n0 0 1\n0 1 0\n1 0 0")
    assert grids[1]["value"][0] == ["0", "0", "1"] and "Filter 2 —" in grids[1]["label"]
    assert grids[2]["visible"] is False and grids[3]["visible"] is False
    text, _ = conv_layer._grids_to_text(0)("1 0 0\n0 1 0\n0 0 1\n---\n0 0 1\n0 1 0\n1 0 0",
                                            [["2", "0", "0"], ["0", "1", "0"], ["0", "0", "1"]])
    assert parse_filters(text)[0, 0, 0] == 2 and parse_filters(text).shape == (2, 3, 3)


def test_the_tab_and_the_widgets_share_the_preset_and_bias_glue():
    from vlmlab.kernels import preset_name
    from vlmlab.kernels.layer import LAYER_PRESET_NAMES, parse_bias, preset_names

    assert preset_name(PRESETS["emboss"]) == "emboss" and preset_name(np.eye(3)) is None
    assert preset_names(LAYER_PRESET) == list(LAYER_PRESET_NAMES)
    assert preset_names(LAYER_PRESET[:2]) is None and preset_names(LAYER_PRESET + 1) is None
    assert parse_bias(" ", 4) is None and parse_bias(None, 4) is None
    assert parse_bias("1 -0.5", 2).tolist() == [1.0, -0.5]
    with pytest.raises(LabError, match="bias"):
        parse_bias("1 2 3", 2)
