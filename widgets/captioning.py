"""The Captioning tab in Jupyter: BLIP's caption, streamed word by word, each token coloured by
its probability. Same engine calls as the Gradio tab (`vlmlab.captioning`,
`vlmlab.captioning_render`)."""

from __future__ import annotations

import html
import io

import ipywidgets as widgets
from PIL import Image

from vlmlab import captioning
from vlmlab.captioning_render import caption_html, caption_notes
from vlmlab.errors import LabError
from vlmlab.images import ImageSource, load_image
from vlmlab.models import choices


def thumbnail_png(image: Image.Image, side: int = 320) -> bytes:
    """The photo, at most `side` pixels wide and high, as PNG bytes for a `widgets.Image`."""
    thumbnail = image.copy()
    thumbnail.thumbnail((side, side))
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="PNG")
    return buffer.getvalue()


class Captioner(widgets.VBox):
    """Decoding controls in, BLIP's caption out (with every beam under beam search).

    Changing a control captions again; "caption again" draws a new sample when sampling.
    """

    def __init__(
        self,
        image: ImageSource,
        *,
        model: str = captioning.DEFAULT_MODEL,
        decoding: str = "greedy",
        prompt: str = "",
        max_new_tokens: int = 30,
    ):
        self.image = load_image(image)
        self.model = widgets.Dropdown(
            options=choices("captioning"), value=model, description="model"
        )
        self.decoding = widgets.ToggleButtons(
            options=list(captioning.DECODINGS), value=decoding, description="decoding"
        )
        slider = dict(continuous_update=False, style={"description_width": "initial"})
        self.beams = widgets.IntSlider(
            3, min=2, max=captioning.MAX_BEAMS, description="beams", **slider
        )
        self.temperature = widgets.FloatSlider(
            1.0,
            min=0.1,
            max=captioning.MAX_TEMPERATURE,
            step=0.05,
            description="temperature",
            **slider,
        )
        self.top_p = widgets.FloatSlider(
            0.9, min=0.05, max=1.0, step=0.05, description="top-p", **slider
        )
        self.length = widgets.IntSlider(
            max_new_tokens, min=1, max=captioning.MAX_NEW_TOKENS, description="max tokens", **slider
        )
        self.prefix = widgets.Text(
            prompt, description="prefix", placeholder="a picture of", continuous_update=False
        )
        self.again = widgets.Button(description="caption again", icon="refresh")
        self.picture = widgets.Image(value=thumbnail_png(self.image), format="png")
        self.view = widgets.HTML()
        self.notes = widgets.HTML()
        self.caption: captioning.Caption | None = None  # the last one shown

        controls = (self.model, self.decoding, self.beams, self.temperature, self.top_p)
        for control in (*controls, self.length, self.prefix):
            control.observe(self._show, "value")
        self.again.on_click(self._show)
        self._show()
        knobs = widgets.VBox([*controls, self.length, self.prefix, self.again])
        super().__init__([widgets.HBox([self.picture, knobs]), self.view, self.notes])

    def _show(self, _change=None) -> None:
        how = self.decoding.value
        self.beams.layout.display = None if how == "beam search" else "none"
        for knob in (self.temperature, self.top_p):
            knob.layout.display = None if how == "sampling" else "none"
        try:
            settings = captioning.settings_for(
                how,
                num_beams=self.beams.value,
                temperature=self.temperature.value,
                top_p=self.top_p.value,
                max_new_tokens=self.length.value,
            )
            self.notes.value = ""
            for part in captioning.caption_stream(
                self.image, model=self.model.value, prompt=self.prefix.value, **settings
            ):
                self.view.value = caption_html(part)
                self.caption = part
        except LabError as error:
            self.view.value = ""  # no stale answer beside the error
            self.notes.value = f"<span style='color:#b00020'>{html.escape(str(error))}</span>"
            return
        self.notes.value = "<br>".join(
            html.escape(line) for line in caption_notes(self.caption).split("\n\n")
        )
