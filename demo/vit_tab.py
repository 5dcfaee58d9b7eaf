"""The ViT tab: inside a Vision Transformer: patches, position embeddings, attention."""

from __future__ import annotations

import gradio as gr

from demo.common import Lab

TITLE = "ViT"


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown("This tab will show inside a Vision Transformer: patches, position embeddings, attention. It is not built yet.")
