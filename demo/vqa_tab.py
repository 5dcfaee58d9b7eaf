"""The VQA tab: questions about the photo, answered with probabilities."""

from __future__ import annotations

import gradio as gr

from demo.common import Lab

TITLE = "VQA"


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown("This tab will show questions about the photo, answered with probabilities. It is not built yet.")
