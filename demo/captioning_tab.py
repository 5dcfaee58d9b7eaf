"""The Captioning tab: a caption for the photo, with the model's confidence per word."""

from __future__ import annotations

import gradio as gr

from demo.common import Lab

TITLE = "Captioning"


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown("This tab will show a caption for the photo, with the model's confidence per word. It is not built yet.")
