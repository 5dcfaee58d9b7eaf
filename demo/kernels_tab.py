"""The Convolution tab: convolution kernels, preset or typed by hand, stepped through."""

from __future__ import annotations

import gradio as gr

from demo.common import Lab

TITLE = "Convolution"


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown("This tab will show convolution kernels, preset or typed by hand, stepped through. It is not built yet.")
