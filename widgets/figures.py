"""Figures to keep, in Jupyter: every widget gets a small "Save figures" button under it (and
`widget.save_figures(folder)`) that writes each picture it shows as the app's "Figures to keep"
panel does — a PNG at twice the size with a one-line caption, an SVG for the matplotlib-drawn
ones, named from the widget's settings — through the same `vlmlab.export.save_view_figures`."""

from __future__ import annotations

import functools
import html
from pathlib import Path

import ipywidgets as widgets

from vlmlab import export
from vlmlab.errors import LabError

# The settings that name a figure, read from the widget's attributes of the same name (a control's
# value, or a plain value such as the model it was built with), in this order.
SETTINGS = ("model", "layer", "channel", "head", "query", "direction", "steps", "space", "mode")
FOLDER = "figures"  # where the button saves, beside the notebook


def _value(attribute):
    value = getattr(attribute, "value", attribute)
    return value if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None


class Keepable:
    """Mixin for a widget: `FIGURES` maps its picture attributes (ipywidgets.Image) to what each
    shows, or to (what it shows, the file name's first word); empty means every picture
    attribute, named after it. `FIGURE_TOPIC` is the file names' first word (default: the app
    tab it links to, else its module's topic)."""

    FIGURES: dict[str, str | tuple[str, str]] = {}
    FIGURE_TOPIC: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        init = cls.__init__

        @functools.wraps(init)
        def with_saver(self, *args, **kwargs):
            depth = getattr(self, "_saver_depth", 0)
            self._saver_depth = depth + 1
            try:
                init(self, *args, **kwargs)
            finally:
                self._saver_depth = depth
            if depth == 0 and self.figures():  # once, after the outermost __init__; a widget
                self.children = (*self.children, self.figure_saver())  # whose model is missing has none

        cls.__init__ = with_saver

    def figure_settings(self) -> dict:
        """The widget's settings that name its figures ({"model": "resnet50", "layer": …})."""
        built = getattr(self, "_link_args", {})  # what a linkable widget was built with
        found = {key: _value(getattr(self, key, built.get(key))) for key in SETTINGS}
        return {key: value for key, value in found.items() if value is not None}

    def figures(self) -> list[tuple]:
        """(PNG bytes as shown, what it shows, setting keys[, first word]) for each picture."""
        named = self.FIGURES or {
            name: name.replace("_", " ")
            for name, value in vars(self).items()
            if isinstance(value, widgets.Image)
        }
        keys = list(self.figure_settings())
        found = []
        for attribute, what in named.items():
            picture = getattr(self, attribute, None)
            if not isinstance(picture, widgets.Image):
                continue
            if isinstance(what, tuple):
                found.append((picture.value, what[0], keys, what[1]))
            else:
                found.append((picture.value, what, keys))
        return found

    def figure_topic(self) -> str:
        return self.FIGURE_TOPIC or getattr(self, "LINK_TAB", "") or type(self).__module__.split(".")[-1]

    def save_figures(self, folder: str | Path = FOLDER) -> list[Path]:
        """Save every picture shown now into `folder`: PNG at 2× with its caption inside, SVG
        for the matplotlib-drawn ones. Returns the files written."""
        paths, _ = export.save_view_figures(
            self.figure_topic(), self.figures(), self.figure_settings(), folder
        )
        return paths

    def figure_saver(self) -> widgets.HBox:
        """The small "Save figures" button and what it last saved (file names, or why not)."""
        self.save_button = widgets.Button(
            description="Save figures", icon="download", tooltip="PNG at 2×, SVG, captions",
            layout=widgets.Layout(width="auto"),
        )  # fmt: skip
        self.saved = widgets.HTML()

        def save(_button) -> None:
            try:
                paths = self.save_figures()
            except LabError as error:
                self.saved.value = f"<span style='color:#b00020'>{html.escape(str(error))}</span>"
                return
            names = ", ".join(html.escape(str(path)) for path in paths)
            self.saved.value = f"<span>Saved: {names}</span>"

        self.save_button.on_click(save)
        return widgets.HBox([self.save_button, self.saved])
