"""Figures to keep: each tab's "Figures to keep" panel saves every figure it shows as a PNG at
twice the on-screen resolution (and the matplotlib ones as SVG), each named after what it shows
and the view's settings, with a one-line caption. The saving itself is `vlmlab.export`'s."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import gradio as gr

from vlmlab import export
from vlmlab.errors import LabError

from .common import LIGHT_EVENT, guard

# (the picture's component, what it shows, the settings that name it: keys of `settings`), and
# optionally the file name's first word when it is not the tab's (see export.save_view_figures)
Kept = tuple


def prepare_figures(
    topic: str, figures: Sequence[tuple], values: Mapping, folder: Path
) -> tuple[list[str], str]:
    """Save each shown picture (PIL or array) of `figures` into `folder` through
    `export.save_view_figures`: its files and the captions as Markdown lines. Pictures not shown
    yet (None) are left out."""
    try:
        paths, lines = export.save_view_figures(topic, figures, values, folder)
    except LabError as error:
        raise gr.Error(str(error).replace("here", "in this tab"), print_exception=False) from None
    return [str(p) for p in paths], "\n".join(lines)


def keep_figures(topic: str, figures: Sequence[Kept], settings: Mapping[str, gr.Component]):
    """A closed "Figures to keep" panel under a tab: one button saves every figure in `figures`
    as shown now (PNG 2×, SVG where drawn with matplotlib), named by `topic`, the settings each
    figure lists (read from the `settings` components) and what it shows."""
    for image, *_ in figures:
        if getattr(image, "format", None) == "webp":  # Gradio's lossy default: shown without loss instead, so
            image.format = "png"  # the matplotlib figure kept for it is found again
    keys = list(settings)
    with gr.Accordion("Figures to keep (PNG at 2×, SVG, captions)", open=False,
                      elem_classes=["lab-figures"]):  # fmt: skip
        save = gr.Button("Save this tab's figures", size="sm", elem_classes=["lab-save-figures"])
        files = gr.File(label="Your figures", file_count="multiple", interactive=False,
                        elem_classes=["lab-figure-files"])  # fmt: skip
        captions = gr.Markdown(elem_classes=["lab-figure-captions"])

    @guard
    def save_figures(*values):
        pictures, chosen = values[: len(figures)], dict(zip(keys, values[len(figures) :]))
        folder = Path(files.GRADIO_CACHE) / "figures" / uuid.uuid4().hex
        folder.mkdir(parents=True, exist_ok=True)
        shown = [(p, *spec[1:]) for p, spec in zip(pictures, figures)]
        return prepare_figures(topic, shown, chosen, folder)

    inputs = [spec[0] for spec in figures] + [settings[k] for k in keys]
    save.click(save_figures, inputs, [files, captions], api_visibility="private", **LIGHT_EVENT)
