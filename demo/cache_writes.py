"""Pictures reach the browser whole, however many students are shown the same one.

Gradio writes each output picture into its cache under a folder named by the picture's bytes, and
writes the file again, in place, when the same picture comes again: another student's result on the
same sample photo, or a streamed view sent anew with each word of a caption. A browser fetching the
file meanwhile gets it half written (the server logs "Response content longer than Content-Length";
the page shows a broken picture). Gradio already copies *files* into its cache under a temporary
name, renamed into place, and keeps a copy that is there; `install()` gives its picture writes the
same treatment, for every component that draws (Image, Gallery, AnnotatedImage).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gradio import processing_utils
from gradio.utils import get_upload_folder
from PIL import Image


def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """Gradio's `processing_utils.save_pil_to_cache`, never rewriting a picture in place."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / f"{name}.{format}").resolve()
    if path.exists():  # the same bytes: keep the copy a browser may be reading
        os.utime(path)  # handed out again: `delete_cache` ages files from their last use
        return str(path)
    fd, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(staging, path)  # whole, at once
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return str(path)


def as_file(picture: Image.Image) -> str:
    """The picture written once into Gradio's cache, losslessly: handed to a component again (each
    part of a stream), it is a file already there, and nothing is drawn, encoded or copied."""
    return save_pil_to_cache(picture, get_upload_folder(), format="png")


def install() -> None:
    """Route Gradio's picture writes (its components call them through the module) here."""
    processing_utils.save_pil_to_cache = save_pil_to_cache
