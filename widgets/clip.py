"""The CLIP tab in Jupyter: a zero-shot classifier with a relevance map per label, the
similarity-matrix explorer (with a chosen pair's map) and the robustness probe. Same engine calls
as the Gradio tab (`vlmlab.clip`, `vlmlab.clip.render`)."""

from __future__ import annotations

import html

import ipywidgets as widgets

from vlmlab import clip
from vlmlab.clip import probe as clip_probe
from vlmlab.clip import render as clip_render
from vlmlab.errors import LabError
from vlmlab.images import ImageSource, load_image, sample_images
from vlmlab.models import choices, get_spec
from vlmlab.render import map_over
from vlmlab.render import error_html, png_bytes

from .pixels import row
from .figures import Keepable
from .links import Linkable




def _lines(lines: list[str]) -> str:
    return "<br>".join(html.escape(line) for line in lines)




def _model_picker(model: str) -> widgets.Dropdown:
    """The curated CLIP models, and `model` if it is one by name (checked here)."""
    model = get_spec(model, "clip").name
    options = list(dict.fromkeys([*choices("clip"), model]))
    return widgets.Dropdown(options=options, value=model, description="model")


class ZeroShotClassifier(Linkable, Keepable, widgets.VBox):
    """Labels and prompt templates in, CLIP's probabilities (with raw cosines) out, and where in
    the photo each label is found (relevance maps, the most likely labels first)."""

    # widget.link() and ZeroShotClassifier.from_link(link): see widgets/links.py
    LINK_TAB = "clip"
    LINK_INIT = {"model": "model", "labels": "labels"}
    LINK_CONTROLS = {"model": "model", "labels": "labels", "templates": "templates"}

    def __init__(
        self,
        image: ImageSource,
        labels: str = clip.DEFAULT_LABELS,
        *,
        model: str = clip.DEFAULT_MODEL,
        template_set: str = "a photo of a {}.",
    ):
        self.image = load_image(image)
        self.labels = widgets.Textarea(labels, description="labels", rows=6)
        self.template_set = widgets.Dropdown(
            options=list(clip.TEMPLATE_SETS), value=template_set, description="templates"
        )
        self.templates = widgets.Textarea(
            "\n".join(clip.TEMPLATE_SETS[template_set]), description="{} = label", rows=3
        )
        self.model = _model_picker(model)
        self.start_layer = widgets.BoundedIntText(
            0, min=0, max=99, description="from layer", tooltip="0: the last layer only"
        )
        self.picture = widgets.Image(format="png")
        self.notes = widgets.HTML()
        self.maps = widgets.Image(format="png")
        self.maps_notes = widgets.HTML()
        self.template_set.observe(self._pick_templates, "value")
        for control in (self.labels, self.templates, self.model, self.start_layer):
            control.observe(self._show, "value")
        self._show()
        controls = widgets.VBox(
            [self.labels, self.template_set, self.templates, self.model, self.start_layer]
        )
        super().__init__(
            [row([controls, self.picture]), self.notes, self.maps, self.maps_notes]
        )

    def _pick_templates(self, change) -> None:
        self.templates.value = "\n".join(clip.TEMPLATE_SETS[change["new"]])  # re-runs _show

    def _show(self, _change=None) -> None:
        try:
            result = clip.score_labels(
                self.image,
                self.labels.value,
                model=self.model.value,
                templates=self.templates.value,
            )
        except LabError as error:
            self.notes.value = error_html(error)
            self.maps.value, self.maps_notes.value = b"", ""  # no stale maps beside the error
            return
        self.picture.value = png_bytes(clip_render.draw_zero_shot(result))
        self.notes.value = _lines(clip_render.describe_zero_shot(result))
        try:
            found = clip.relevance_maps(
                self.image,
                self.labels.value,
                model=self.model.value,
                templates=self.templates.value,
                start_layer=self.start_layer.value or None,
                ranked=True,
            )
        except LabError as error:
            self.maps_notes.value = error_html(error)
            return
        self.maps.value = png_bytes(clip_render.draw_relevance(found))
        self.maps_notes.value = _lines(clip_render.describe_relevance(found))


class SimilarityExplorer(Keepable, widgets.VBox):
    """Sample photos against captions: the matrix CLIP's contrastive loss is trained on."""

    def __init__(
        self,
        samples: list[str] | None = None,
        texts: str | None = None,
        *,
        images: dict[str, ImageSource] | None = None,
        model: str = clip.DEFAULT_MODEL,
    ):
        photos = sample_images()
        samples = list(samples or ["chelsea", "astronaut", "coffee", "rocket"])
        unknown = [name for name in samples if name not in photos]
        if unknown:
            raise LabError(f"There is no sample called {unknown[0]!r}; try {', '.join(photos)}.")
        self.names = samples + list(images or {})
        self.images = [photos[name] for name in samples]
        self.images += [load_image(source) for source in (images or {}).values()]
        if texts is None:
            texts = "\n".join(clip.SAMPLE_CAPTIONS.get(name, name) for name in self.names)
        self.texts = widgets.Textarea(texts, description="texts", rows=max(4, len(self.names)))
        self.softmax = widgets.Checkbox(False, description="row-wise softmax")
        self.pairs = widgets.Checkbox(True, description="image i goes with text i")
        self.model = _model_picker(model)
        self.picture = widgets.Image(format="png")
        self.notes = widgets.HTML()
        self.pair_image = widgets.Dropdown(
            options=[(f"I{i}: {name}", i - 1) for i, name in enumerate(self.names, start=1)],
            description="image",
        )
        self.pair_text = widgets.Dropdown(options=[], description="text")
        self.pair = widgets.Image(format="png")
        self.pair_notes = widgets.HTML()
        for control in (self.texts, self.softmax, self.pairs, self.model):
            control.observe(self._show, "value")
        for control in (self.pair_image, self.pair_text):
            control.observe(self._show_pair, "value")
        self._show()
        controls = widgets.HBox([self.softmax, self.pairs, self.model])
        pair = row([widgets.VBox([self.pair_image, self.pair_text, self.pair_notes]), self.pair])
        super().__init__([self.texts, controls, self.picture, self.notes, pair])

    def _show(self, _change=None) -> None:
        try:
            matrix = clip.compare(self.images, self.texts.value, model=self.model.value)
        except LabError as error:
            self.notes.value = error_html(error)
            return
        self.picture.value = png_bytes(
            clip_render.draw_similarity(
                matrix,
                self.images,
                self.names,
                softmax=self.softmax.value,
                pairs=self.pairs.value,
            )
        )
        self.notes.value = _lines(clip_render.describe_similarity(matrix, pairs=self.pairs.value))
        texts = [(f"T{j}: {text}", text) for j, text in enumerate(matrix.texts, start=1)]
        values = [value for _, value in texts]
        if values != [value for _, value in self.pair_text.options]:
            self.pair_text.options = texts
        if self.pair_text.value not in values:
            self.pair_text.value = values[0]  # re-runs _show_pair
        else:
            self._show_pair()

    def _show_pair(self, _change=None) -> None:
        """Where the chosen image shows the chosen text: its relevance map."""
        if self.pair_text.value is None or self.pair_image.value is None:
            return
        try:
            found = clip.relevance_maps(
                self.images[self.pair_image.value], [self.pair_text.value], model=self.model.value
            )
        except LabError as error:
            self.pair_notes.value = error_html(error)
            return
        self.pair.value = png_bytes(map_over(found.image, found.maps[0], side=256))
        self.pair_notes.value = _lines(clip_render.describe_relevance(found))


class RobustnessProbe(Keepable, widgets.VBox):
    """The photo blurred, grayscale, sketched, noisy: does CLIP or the CNN keep its answer?"""

    def __init__(
        self,
        image: ImageSource,
        *,
        model: str = clip.DEFAULT_MODEL,
        cnn: str = clip_probe.PROBE_CNN,
        kernel_text: str | None = None,
    ):
        self.image = load_image(image)
        offered = [
            name for name in clip_probe.DISTORTIONS if name != "kernel" or kernel_text is not None
        ]
        self.distortions = widgets.SelectMultiple(
            options=offered, value=clip_probe.DEFAULT_DISTORTIONS, description="distortions"
        )
        self.strength = widgets.FloatSlider(0.5, min=0, max=1, step=0.05, description="strength")
        self.kernel_text = kernel_text
        self.model = _model_picker(model)
        self.cnn = widgets.Dropdown(options=choices("cnn"), value=cnn, description="CNN")
        self.picture = widgets.Image(format="png")
        self.notes = widgets.HTML()
        for control in (self.distortions, self.strength, self.model, self.cnn):
            control.observe(self._show, "value")
        self._show()
        controls = widgets.HBox(
            [self.distortions, widgets.VBox([self.strength, self.model, self.cnn])]
        )
        super().__init__([controls, self.picture, self.notes])

    def _show(self, _change=None) -> None:
        try:
            result = clip_probe.probe(
                self.image,
                distortions=self.distortions.value,
                strength=self.strength.value,
                kernel_text=self.kernel_text,
                clip_model=self.model.value,
                cnn_model=self.cnn.value,
            )
        except LabError as error:
            self.notes.value = error_html(error)
            return
        self.picture.value = png_bytes(
            clip_render.draw_probe(
                result,
                clip_title=f"CLIP {self.model.value.split('/')[-1]}",
                cnn_title=self.cnn.value,
            )
        )
        self.notes.value = _lines(clip_render.describe_probe(result))
