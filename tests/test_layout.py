"""The project's shape: the engine stays free of UI imports, the app launches safely."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import vlmlab

ROOT = Path(__file__).resolve().parents[1]


def test_the_engine_imports_neither_gradio_nor_ipywidgets():
    modules = [f"vlmlab.{m.name}" for m in pkgutil.iter_modules(vlmlab.__path__)]
    assert "vlmlab.images" in modules and "vlmlab.models" in modules
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


def test_launch_defaults_are_safe():
    from demo import MAX_QUEUE, launch_options

    options = launch_options()
    assert options["share"] is False
    assert options["server_name"] == "127.0.0.1"
    assert options["allowed_paths"] == []
    assert options["max_file_size"]
    assert options["enable_monitoring"] is False
    assert MAX_QUEUE > 0


def test_the_app_builds_every_tab_in_lecture_order(lab_app):
    config = lab_app.config
    tabs = [c["props"]["label"] for c in config["components"] if c["type"] == "tabitem"]
    assert tabs == [
        "Pixels", "Convolution", "CNN", "ViT", "Contrastive", "CLIP", "Captioning", "VQA"
    ]  # fmt: skip
    assert config["components"] and lab_app.demo.max_file_size == 20 * 1024 * 1024
