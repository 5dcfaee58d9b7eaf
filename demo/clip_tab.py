"""The CLIP tab: CLIP zero-shot classification and the image–text similarity matrix."""

from __future__ import annotations

import gradio as gr

from demo.common import Lab

TITLE = "CLIP"


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown("This tab will show CLIP zero-shot classification and the image–text similarity matrix. It is not built yet.")
