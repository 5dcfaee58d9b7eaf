"""The Captioning tab in Jupyter: BLIP's caption, streamed word by word, each token coloured by
its probability, with each word's cross-attention map under it. Same engine calls as the Gradio
tab (`vlmlab.captioning`, `vlmlab.captioning.render`)."""

from __future__ import annotations

import html

import ipywidgets as widgets
from PIL import Image

from vlmlab import captioning
from vlmlab.captioning.render import caption_html, caption_notes, draw_word_maps, grounding_notes
from vlmlab.errors import LabError
from vlmlab.images import ImageSource, load_image
from vlmlab.models import choices, load_model
from vlmlab.render import error_html, map_over, png_bytes

from .pixels import row
from .figures import Keepable
from .links import Linkable


def thumbnail_png(image: Image.Image, side: int = 320) -> bytes:
    """The photo, at most `side` pixels wide and high, as PNG bytes for a `widgets.Image`."""
    thumbnail = image.copy()
    thumbnail.thumbnail((side, side))
    return png_bytes(thumbnail)


class Captioner(Linkable, Keepable, widgets.VBox):
    """Decoding controls in, BLIP's caption out (with every beam under beam search).

    Changing a control captions again; "caption again" draws a new sample when sampling.
    """

    # widget.link() and Captioner.from_link(link): see widgets/links.py
    LINK_TAB = "captioning"
    FIGURES = {"maps": "word maps", "large": "word map"}
    LINK_INIT = {"model": "model", "decoding": "decoding", "max_new_tokens": "max_new_tokens"}
    LINK_CONTROLS = {"model": "model", "decoding": "decoding", "num_beams": "beams", "temperature": "temperature", "top_p": "top_p", "max_new_tokens": "length"}

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
        self.maps = widgets.Image(format="png")  # a strip: each word's map, the word above it
        self.word = widgets.Dropdown(options=[], description="word")  # …and one of them large
        self.large = widgets.Image(format="png")
        self.maps_notes = widgets.HTML()
        self.caption: captioning.Caption | None = None  # the last one shown
        self.word.observe(self._show_word, "value")

        controls = (self.model, self.decoding, self.beams, self.temperature, self.top_p)
        for control in (*controls, self.length, self.prefix):
            control.observe(self._show, "value")
        self.again.on_click(self._show)
        self._show()
        knobs = widgets.VBox([*controls, self.length, self.prefix, self.again])
        word = row([widgets.VBox([self.word, self.maps_notes]), self.large])
        super().__init__(
            [row([self.picture, knobs]), self.view, self.maps, word, self.notes]
        )

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
            loaded = load_model(self.model.value, topic="captioning")
            self.seen = captioning.model_view(loaded, self.image)
            for part in captioning.caption_stream(
                self.image, model=self.model.value, prompt=self.prefix.value, maps=True, **settings
            ):
                self.view.value = caption_html(part)
                self.caption = part
                self._show_maps(part)
        except LabError as error:
            self.view.value = ""  # no stale answer beside the error
            self.notes.value = error_html(error)
            return
        self.notes.value = "<br>".join(
            html.escape(line) for line in caption_notes(self.caption).split("\n\n")
        )

    def _words(self, caption: captioning.Caption) -> list[tuple[str, int]]:
        tokens = enumerate(caption.tokens)
        return [(token.text.strip() or "·", i) for i, token in tokens if not token.end]

    def _show_maps(self, caption: captioning.Caption) -> None:
        words = self._words(caption)
        if caption.maps is None or not words:
            self.maps.value = b""
            return
        chosen = [i for _, i in words]
        self.maps.value = thumbnail_png(
            draw_word_maps([w for w, _ in words], caption.maps[chosen], self.seen, columns=12),
            side=1600,
        )
        if caption.done:
            beams = "The maps are the best beam's. " if caption.beams else ""
            self.maps_notes.value = html.escape(beams + grounding_notes())
            self.word.options = words
            if self.word.value is None:
                self.word.value = words[0][1]  # re-runs _show_word
            else:
                self._show_word()

    def _show_word(self, _change=None) -> None:
        caption, index = self.caption, self.word.value
        if caption is None or caption.maps is None or index is None:
            return
        self.large.value = thumbnail_png(map_over(self.seen, caption.maps[index], side=320))
