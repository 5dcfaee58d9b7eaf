"""The projector style switch and figures to keep, without a browser: text scaled in figures for
one visitor only, file names that say what a figure is, PNGs at twice the size with their
caption inside, SVG for the matplotlib-drawn ones."""

from __future__ import annotations

import io
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from demo.figures import prepare_figures
from demo.projector import VisitorStyles, projector_requested, visitor_style, visitors
from vlmlab import export
from vlmlab.errors import LabError
from vlmlab.render import (
    NORMAL,
    PROJECTOR,
    colour_bar,
    current_style,
    figure_style,
    figure_to_image,
    labelled_tiles,
    value_ticks,
)


def chart() -> Figure:
    figure = Figure(figsize=(4, 3), layout="constrained")
    axes = figure.add_subplot()
    axes.bar([0, 1, 2], [3, 1, 2], color="#93c5fd")
    axes.set_xticks([0, 1, 2], ["cat", "dog", "tiger"], fontsize=9)
    axes.set_title("zero-shot", fontsize=10)
    axes.text(1, 2.5, "annotation", fontsize=8)
    return figure


def text_height(image: Image.Image) -> int:
    """Height of the lowest line of dark text (the tick labels under the bars)."""
    dark = (np.asarray(image.convert("L")) < 100).any(axis=1)
    end = int(np.flatnonzero(dark)[-1])
    start = end
    while start > 0 and dark[start - 1]:
        start -= 1
    return end - start + 1


def test_the_projector_style_draws_every_figure_text_larger_and_the_normal_one_does_not():
    normal = figure_to_image(chart())
    with figure_style(True) as style:
        assert style is PROJECTOR and current_style() is PROJECTOR
        large = figure_to_image(chart())
    assert current_style() is NORMAL  # the switch ends with its block
    assert text_height(large) >= 1.3 * text_height(normal)
    # Every text, explicit sizes included, is scaled: titles, ticks, annotations.
    figure = chart()
    with figure_style(PROJECTOR):
        figure_to_image(figure)
    axes = figure.axes[0]
    assert axes.title.get_fontsize() == pytest.approx(10 * PROJECTOR.text_scale)
    assert axes.get_xticklabels()[0].get_fontsize() == pytest.approx(9 * PROJECTOR.text_scale)
    assert axes.texts[0].get_fontsize() == pytest.approx(8 * PROJECTOR.text_scale)
    # An opaque white ground: no dark text on a transparent background in a dark page.
    assert normal.mode == "RGB" and np.asarray(normal)[0, 0].tolist() == [255, 255, 255]


def test_colour_bars_and_labels_drawn_with_pillow_grow_too():
    ticks = value_ticks(0.0, 1.0)
    normal = colour_bar(400, "viridis", ticks, "activation")
    with figure_style(True):
        large = colour_bar(400, "viridis", ticks, "activation")
        tiles = labelled_tiles([Image.new("RGB", (120, 80), "gray")], ["head 1"], columns=1)
    assert large.height > normal.height and large.width == normal.width
    plain = labelled_tiles([Image.new("RGB", (120, 80), "gray")], ["head 1"], columns=1)
    assert tiles.height > plain.height


def test_a_long_colour_bar_label_is_drawn_whole():
    label = "attention weight (share of the query's attention)"
    bar = np.asarray(colour_bar(288, "inferno", value_ticks(0, 1), label).convert("L"))
    words = bar[-20:]  # the label row
    inked = np.flatnonzero((words < 128).any(axis=0))
    assert inked[-1] < 288 - 3  # its closing parenthesis is there, inside the margin


def test_each_thread_keeps_its_own_style():
    seen = {}

    def draw(name, on):
        with figure_style(on):
            barrier.wait()
            seen[name] = text_height(figure_to_image(chart()))

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=draw, args=(n, n == "hall")) for n in ("hall", "desk")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen["hall"] > seen["desk"]


def test_the_url_switch_and_each_visitors_choice():
    assert projector_requested({"projector": "1"}) and projector_requested({"projector": "True"})
    for query in (None, {}, {"projector": "0"}, {"projector": "x" * 100_000}, {"other": "1"}):
        assert not projector_requested(query)
    styles = VisitorStyles(capacity=2)
    styles.set("a", True)
    styles.set("b", False)
    styles.set("c", True)
    assert styles.get("a") is None and styles.get("c") is True and len(styles) == 2  # bounded
    styles.forget("c")
    assert styles.get("c") is None


def test_a_handler_draws_in_its_visitors_style_only():
    from gradio.context import LocalContext

    from vlmlab import render

    def handler():  # a handler as Gradio runs it: the request of its event is known
        return current_style()

    previous = render._style_source
    render.use_style_source(visitor_style)
    visitors.set("hall-session", True)
    try:
        for session, expected in (("hall-session", PROJECTOR), ("desk-session", NORMAL)):
            token = LocalContext.request.set(SimpleNamespace(session_hash=session, query_params={}))
            try:
                assert handler() is expected
                with figure_style(NORMAL):  # an explicit block wins
                    assert handler() is NORMAL
            finally:
                LocalContext.request.reset(token)
        # A page whose choice has not reached the server yet: its URL decides.
        page = SimpleNamespace(session_hash="new", query_params={"projector": "1"})
        token = LocalContext.request.set(page)
        try:
            assert handler() is PROJECTOR
        finally:
            LocalContext.request.reset(token)
        assert handler() is NORMAL  # outside any event
    finally:
        visitors.forget("hall-session")
        render.use_style_source(previous)


def test_file_names_say_what_a_figure_is_and_captions_stay_on_one_line():
    assert export.file_stem("cnn", "resnet50", "layer3", "channel12") == (
        "cnn_resnet50_layer3_channel12"
    )
    assert export.file_stem("clip", "openai/clip-vit-base-patch32", None, "", "zero shot") == (
        "clip_openai-clip-vit-base-patch32_zero-shot"
    )
    assert export.file_stem("vit", "../../etc/passwd", "<script>") == "vit_etc-passwd_script"
    assert len(export.file_stem("cnn", "x" * 1000)) <= export.MAX_STEM
    with pytest.raises(LabError):
        export.file_stem("", None)
    line = export.caption("Feature maps\nof a layer", "resnet50", "layer layer3")
    assert line == "Feature maps of a layer — resnet50, layer layer3"
    assert len(export.caption("x" * 1000)) <= export.MAX_CAPTION


def test_a_matplotlib_figure_is_saved_redrawn_at_twice_the_size_with_an_svg():
    shown = figure_to_image(chart())
    saved = export.save_figure(shown, "clip_zero-shot", "Zero-shot — CLIP, 3 labels")
    png = Image.open(io.BytesIO(saved.png))
    assert png.size == saved.size == (2 * shown.width, 2 * shown.height)
    assert png.text["Description"] == "Zero-shot — CLIP, 3 labels"
    assert png.text["Title"] == "clip_zero-shot" and saved.png_name == "clip_zero-shot.png"
    assert saved.svg is not None and b"<svg" in saved.svg and b"Zero-shot" in saved.svg
    # Redrawn, not enlarged: a 2x2 block of the saved picture is not all one colour everywhere.
    pixels = np.asarray(png.convert("L")).astype(int)
    blocks = pixels[: pixels.shape[0] // 2 * 2, : pixels.shape[1] // 2 * 2]
    blocks = blocks.reshape(blocks.shape[0] // 2, 2, blocks.shape[1] // 2, 2)
    assert (blocks.max(axis=(1, 3)) != blocks.min(axis=(1, 3))).sum() > 200


def test_a_pillow_picture_is_saved_enlarged_pixel_for_pixel_without_svg(tmp_path):
    grid = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), np.uint8))
    saved = export.save_figure(np.asarray(grid), "cnn_alexnet_conv1", "Feature maps — alexnet")
    png = np.asarray(Image.open(io.BytesIO(saved.png)))
    assert png.shape == (60, 80, 3) and saved.svg is None
    assert (png[::2, ::2] == np.asarray(grid)).all() and (png[1::2, 1::2] == png[::2, ::2]).all()
    with pytest.raises(LabError):
        export.save_figure(None, "x", "y")
    # The tab's panel: files named from the settings, captions as lines, nothing not yet shown.
    paths, lines = prepare_figures(
        "cnn",
        [(grid, "channel", ["model", "layer", "channel"]), (None, "grad-cam", ["model"])],
        {"model": "resnet50", "layer": "layer3", "channel": 12.0},
        tmp_path,
    )
    assert [p.split("/")[-1] for p in paths] == ["cnn_resnet50_layer3_channel12_channel.png"]
    assert "Channel — resnet50, layer layer3, channel 12" in lines
