"""Figures to keep: each tab's "Figures to keep" panel saves every figure it shows as a PNG at
twice the on-screen resolution (and the matplotlib ones as SVG), each named after what it shows
and the view's settings, with a one-line caption. The saving itself is `vlmlab.export`'s."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import gradio as gr

from vlmlab import export

from .common import LIGHT_EVENT, guard

# (the picture's component, what it shows, the settings that name it: keys of `settings`)
Kept = tuple[gr.Image | gr.Gallery, str, Sequence[str]]


def _words(key: str, value) -> str | None:
    """A setting as it goes into a file name: numbers with their name (channel12), text as is."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = int(value) if float(value).is_integer() else value
        return f"{key}{number}"
    return str(value)


def _setting_line(keys: Sequence[str], values: Mapping[str, object]) -> str:
    parts = []
    for key in keys:
        value = values.get(key)
        if key == "model" or value in (None, ""):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def prepare_figures(
    topic: str, figures: Sequence[tuple[object, str, Sequence[str]]], values: Mapping, folder: Path
) -> tuple[list[str], str]:
    """Save each shown picture (PIL or array) of `figures` into `folder`: its files and the
    captions as Markdown lines. Pictures not shown yet (None) are left out."""
    paths, lines = [], []
    for shown, what, keys in figures:
        for image, what in _pictures(shown, what):
            _save_one(image, what, keys, topic, values, folder, paths, lines)
    if not paths:
        raise gr.Error("There are no figures in this tab yet: show something first.",
                       print_exception=False)  # fmt: skip
    return paths, "\n".join(lines)


def _pictures(shown, what: str) -> list:
    """A picture, or each of a gallery's (picture, caption) items numbered: (picture, what)."""
    if shown is None:
        return []
    if isinstance(shown, (list, tuple)) and not _is_pixels(shown):
        items = [item[0] if isinstance(item, (list, tuple)) else item for item in shown]
        return [(item, f"{what} {i + 1}") for i, item in enumerate(items) if item is not None]
    return [(shown, what)]


def _is_pixels(value) -> bool:
    import numpy as np

    return isinstance(value, np.ndarray)


def _save_one(image, what, keys, topic, values, folder: Path, paths: list, lines: list) -> None:
    stem = export.file_stem(topic, *(_words(k, values.get(k)) for k in keys), what)
    line = export.caption(what.capitalize(), values.get("model"), _setting_line(keys, values))
    saved = export.save_figure(image, stem, line)
    png = folder / saved.png_name
    png.write_bytes(saved.png)
    paths.append(str(png))
    names = f"`{saved.png_name}` ({saved.size[0]}×{saved.size[1]})"
    if saved.svg is not None:
        svg = folder / saved.svg_name
        svg.write_bytes(saved.svg)
        paths.append(str(svg))
        names += f", `{saved.svg_name}`"
    lines.append(f"- {names}: {line}")


def keep_figures(topic: str, figures: Sequence[Kept], settings: Mapping[str, gr.Component]):
    """A closed "Figures to keep" panel under a tab: one button saves every figure in `figures`
    as shown now (PNG 2×, SVG where drawn with matplotlib), named by `topic`, the settings each
    figure lists (read from the `settings` components) and what it shows."""
    for image, _, _ in figures:
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
        shown = [(p, what, names) for p, (_, what, names) in zip(pictures, figures)]
        return prepare_figures(topic, shown, chosen, folder)

    inputs = [image for image, _, _ in figures] + [settings[k] for k in keys]
    save.click(save_figures, inputs, [files, captions], api_visibility="private", **LIGHT_EVENT)
