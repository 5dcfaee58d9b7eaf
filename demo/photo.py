"""The photo above the tabs: a sample or an upload, chosen once, used by every tab."""

from __future__ import annotations

import gradio as gr

from .common import NO_PHOTO, guard, open_photo
from vlmlab.images import FILE_TYPES, sample_files


def build_photo_picker(demo: gr.Blocks) -> gr.File:
    """Build the picker row; returns the component that holds the session's photo (a path)."""
    samples = sample_files()
    with gr.Row(equal_height=True):
        with gr.Column(scale=2):
            photo = gr.File(
                value=str(samples["chelsea"]),
                label="Your photo (PNG, JPEG, WebP, GIF, BMP or TIFF)",
                file_types=list(FILE_TYPES),
                type="filepath",
                height=140,
                elem_id="photo-file",
            )
            gallery = gr.Gallery(
                value=[
                    (str(path), name.replace("_", " ").title()) for name, path in samples.items()
                ],
                label="…or pick a sample",
                columns=6,
                rows=1,
                height=130,
                allow_preview=False,
                show_label=True,
                elem_id="photo-samples",
            )
        with gr.Column(scale=1):
            preview = gr.Image(
                label="The photo every tab uses",
                type="pil",
                interactive=False,
                height=240,
                elem_id="photo-preview",
            )
            notes = gr.Markdown(elem_id="photo-notes")

    names = list(samples)

    def pick_sample(event: gr.SelectData) -> str:
        return str(samples[names[event.index]])

    @guard
    def show(path: str | None):
        if not path:  # cleared: every tab waits for a photo, and says so here
            return None, f"**{NO_PHOTO}** Every tab works on it."
        intake = open_photo(path)
        size = f"{intake.image.width}×{intake.image.height} pixels"
        return intake.image, " ".join((size + ".",) + intake.notes)

    gallery.select(pick_sample, None, photo, api_visibility="private")
    photo.change(show, photo, [preview, notes], api_visibility="private")
    demo.load(show, photo, [preview, notes], api_visibility="private")
    return photo
