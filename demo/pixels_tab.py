"""The Pixels tab: the image as numbers: a grayscale matrix, a C×H×W tensor, colour spaces."""

from __future__ import annotations

import gradio as gr

from demo.common import Lab

TITLE = "Pixels"


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown("This tab will show the image as numbers: a grayscale matrix, a C×H×W tensor, colour spaces. It is not built yet.")
