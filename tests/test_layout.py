"""The project's shape: the engine stays free of UI imports, the app launches safely."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import vlmlab

ROOT = Path(__file__).resolve().parents[1]


def test_the_engine_imports_neither_gradio_nor_ipywidgets():
    # every module, the topics' sub-packages' included (their renderers draw with matplotlib)
    modules = [m.name for m in pkgutil.walk_packages(vlmlab.__path__, "vlmlab.")]
    assert {"vlmlab.images", "vlmlab.models", "vlmlab.cnn.render", "vlmlab.vit.render"} <= set(modules)
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n    importlib.import_module(name)\n"
        "print(sorted(m for m in ('gradio', 'ipywidgets') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_launch_defaults_are_safe_and_the_launched_lab_keeps_them(lab_app):
    from demo import MAX_QUEUE, MAX_UPLOAD, launch_options

    options = launch_options()
    assert options["share"] is False and options["server_name"] == "127.0.0.1"
    assert options["allowed_paths"] == [] and options["enable_monitoring"] is False
    asked = launch_options(host="0.0.0.0", share=True, port=9000)
    assert (asked["server_name"], asked["share"], asked["server_port"]) == ("0.0.0.0", True, 9000)
    demo = lab_app.demo  # launched with launch_options(port=…): what a student meets
    assert options["max_file_size"] == MAX_UPLOAD == "20mb"  # the README's 20 MB
    assert demo.max_file_size == 20 * 1024 * 1024
    assert demo.allowed_paths == [] and demo.share is False and demo.show_error is False
    assert demo._queue.max_size == MAX_QUEUE and demo.state_session_capacity >= 1


def test_the_app_builds_every_tab_in_lecture_order(lab_app):
    config = lab_app.config
    tabs = [c["props"]["label"] for c in config["components"] if c["type"] == "tabitem"]
    assert tabs == [
        "Pixels", "Convolution", "CNN", "ViT", "Contrastive", "CLIP", "Captioning", "VQA"
    ]  # fmt: skip
    assert config["components"] and lab_app.demo.max_file_size == 20 * 1024 * 1024


def test_every_drawn_view_is_read_only_so_no_figure_offers_an_upload_zone(lab_app):
    """An output picture that Gradio may treat as an input shows "Drop Image Here" while empty:
    in a hall that reads as an instruction. Only the photo pickers take pictures in."""
    import gradio as gr

    takes_pictures = {"…or pick a sample"}  # the samples: a click picks one
    open_to_input = sorted(
        f"{type(block).__name__} {block.label!r}"
        for block in lab_app.demo.blocks.values()
        if isinstance(block, (gr.Image, gr.Gallery))
        and block.interactive is not False
        and block.label not in takes_pictures
    )
    assert open_to_input == [], open_to_input
