"""The photo above the tabs: a sample or an upload, chosen once, used by every tab.

A new photo can be dropped or uploaded at any time (the upload zone stays empty and ready), the
samples are one click away, and the choice is kept in the browser's own storage, so a reload
brings it back for that browser only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder

from .common import LIGHT_EVENT, NO_PHOTO, guard, open_photo, photo_problem
from .links import link_for_load, linked_photo, released, same_photo
from vlmlab.images import FILE_TYPES, sample_files

DEFAULT_SAMPLE = "chelsea"
STORAGE_KEY = "vlmlab-photo"  # the browser's localStorage entry (its value is encrypted)


def build_photo_picker(demo: gr.Blocks) -> tuple[gr.File, Any, gr.State, gr.State]:
    """Build the picker row. Returns the component that holds the session's photo (a path),
    the page-load event after which the photo is known (this browser's last choice restored,
    or the sample the page's link names), a gr.State that says whether it was restored (see
    `Lab.opened`) and a gr.State with the page's link (`Lab.link`, see demo/links.py)."""
    samples = sample_files()
    # The session's photo, as every tab and API endpoint takes it. Hidden: people see the
    # preview, and drop new photos on the upload zone.
    photo = gr.File(
        value=str(samples[DEFAULT_SAMPLE]),
        file_types=list(FILE_TYPES),
        type="filepath",
        visible=False,
        elem_id="photo-current",
    )
    saved = gr.BrowserState(None, storage_key=STORAGE_KEY)
    with gr.Row(equal_height=True):
        with gr.Column(scale=2):
            upload = gr.File(
                None,
                label="Your own photo, any time (PNG, JPEG, WebP, GIF, BMP, TIFF)",
                file_types=list(FILE_TYPES),
                type="filepath",
                height=130,
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

    def pick_sample(link, event: gr.SelectData):
        """A sample picked by hand; the page's link no longer holds the view (see Lab.link)."""
        return str(samples[names[event.index]]), released(link)

    def take_upload(path: str | None, link):
        """An upload becomes the photo; the zone empties, ready for the next one."""
        return (path or gr.skip()), None, (released(link) if path else gr.skip())

    def restore(remembered, current, request: gr.Request):
        """The sample the page's link names, else the photo this browser chose last time (if
        the server still has it); and the link, decoded."""
        view = link_for_load(request)
        path = linked_photo(view) or remembered_photo(remembered, samples.values())
        if path is None or same_photo(path, current):
            return gr.skip(), False, view
        return path, True, view

    def show_opened(was_restored: bool, path: str | None):
        return (gr.skip(),) * 3 if was_restored else show(path)

    @guard
    def show(path: str | None):
        if not path:  # no photo (only the API can send none): every tab waits for one
            return None, f"**{NO_PHOTO}** Every tab works on it.", gr.skip()
        intake = open_photo(path)
        size = f"{intake.image.width}×{intake.image.height} pixels"
        # Remembered only once it opened: a broken upload is not brought back by a reload.
        return intake.image, " ".join((size + ".",) + intake.notes), path

    private = {"api_visibility": "private", **LIGHT_EVENT}
    link = gr.State(None)
    gallery.select(pick_sample, link, [photo, link], **private)
    upload.upload(take_upload, [upload, link], [photo, upload, link], **private)
    photo.change(show, photo, [preview, notes, saved], **private)
    restored = gr.State(False)
    opened = demo.load(restore, [saved, photo], [photo, restored, link], **private)
    opened.then(show_opened, [restored, photo], [preview, notes, saved], **private)
    return photo, opened, restored, link


def remembered_photo(remembered, samples) -> str | None:
    """A path a browser kept, if it is one the lab gave out (an upload in Gradio's cache or a
    sample) and can still open. The browser's storage is the user's to edit: anything else,
    such as a path to a server file, is ignored."""
    if not isinstance(remembered, str) or not remembered or len(remembered) > 4096:
        return None
    try:
        path = Path(remembered).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    cache = Path(get_upload_folder()).resolve()
    allowed = path.is_relative_to(cache) or path in {Path(p).resolve() for p in samples}
    if not allowed or not path.is_file() or photo_problem(str(path)) is not None:
        return None
    return str(path)
