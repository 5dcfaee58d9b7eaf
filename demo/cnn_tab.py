"""The CNN tab: inside AlexNet, VGG and ResNet: feature maps, filters, predictions."""

from __future__ import annotations

import gradio as gr

from demo.common import Lab

TITLE = "CNN"


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown("This tab will show inside AlexNet, VGG and ResNet: feature maps, filters, predictions. It is not built yet.")
