"""The CNN tab in Jupyter: predictions, a feature-map browser, what a channel wants to see, the
learned filters, Grad-CAM and the depth table. Same engine calls as the Gradio tab (`vlmlab.cnn`,
`vlmlab.cnn.gradcam`, `vlmlab.cnn.depth`); one forward per photo and network, then re-rendering only.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from vlmlab import cnn
from vlmlab.cnn import depth as cnn_depth
from vlmlab.cnn import render as cnn_render
from vlmlab.cnn import featurevis_render as cnn_visualize_render
from vlmlab.cnn import gradcam
from vlmlab.errors import LabError
from vlmlab.images import ImageSource
from vlmlab.kernels import format_kernel
from vlmlab.models import choices, get_spec
from vlmlab.render import png_bytes

from .pixels import row, unavailable
from .figures import Keepable
from .links import Linkable

TOP_CLASS = "the top class"




def _picture(width: str) -> widgets.Image:
    return widgets.Image(format="png", layout=widgets.Layout(width=width))


def _say(box: widgets.HTML, text: str, *, error: bool = False) -> None:
    style = " style='color:#b00020'" if error else ""
    box.value = f"<p{style}>{html.escape(text)}</p>"


def _bars(prediction: cnn.Prediction) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td style='width:60%'><div style='background:#4c72b0;"
        f"width:{p:.1%};height:1em'></div></td><td>{p:.1%}</td></tr>"
        for label, p in prediction
    )
    return f"<table style='width:100%'>{rows}</table>"


class PredictionView(widgets.VBox):
    """The network's top-k ImageNet classes for a photo, as bars; change network or k."""

    def __init__(self, image: ImageSource, model: str = cnn.DEFAULT_MODEL, top_k: int = 5):
        self.image = cnn.rgb_image(image)
        model = get_spec(model, cnn.TOPIC).name  # a network by name is checked here
        names = list(dict.fromkeys([*choices(cnn.TOPIC), model]))
        networks = [(get_spec(name).title, name) for name in names]
        self.model = widgets.Dropdown(options=networks, value=model, description="network")
        self.top_k = widgets.IntSlider(top_k, min=1, max=20, description="top-k")
        self.output = widgets.HTML()
        for control in (self.model, self.top_k):
            control.observe(self._show, "value")
        self._show()
        super().__init__([widgets.HBox([self.model, self.top_k]), self.output])

    def _show(self, _change=None) -> None:
        try:
            prediction = cnn.classify(self.image, self.model.value, self.top_k.value)
        except LabError as error:
            _say(self.output, str(error), error=True)
            return
        self.output.value = _bars(prediction)


class FeatureMapBrowser(Linkable, Keepable, widgets.VBox):
    """Every channel of a layer as a grid, one channel large and over the photo.

    The network runs once for the photo; changing layer, order or channel only re-renders.
    """

    # widget.link() and FeatureMapBrowser.from_link(link): see widgets/links.py
    LINK_TAB = "cnn"
    LINK_INIT = {"model": "model", "layer": "layer"}
    LINK_CONTROLS = {"layer": "layer", "channel": "channel"}
    FIGURES = {"grid": "feature maps", "large": "channel", "overlay": "channel over the photo"}

    def __init__(
        self,
        image: ImageSource,
        model: str = cnn.DEFAULT_MODEL,
        layer: str | None = None,
        *,
        pretrained: bool = True,
    ):
        try:
            self.capture = cnn.capture_features(image, model, pretrained=pretrained)
        except LabError as error:
            unavailable(self, error)
            return
        names = self.capture.architecture.names
        self.layer = widgets.Dropdown(options=names, value=layer or names[0], description="layer")
        self.order = widgets.ToggleButtons(
            options=[("most active first", "activation"), ("by number", "index")],
            value="activation",
        )
        self.channel = widgets.IntSlider(0, min=0, max=1, description="channel")
        self.grid = _picture("55%")
        self.large = _picture("21%")
        self.overlay = _picture("21%")
        self.caption = widgets.HTML()
        self.layer.observe(self._new_layer, "value")
        self.order.observe(self._new_layer, "value")
        self.channel.observe(self._show, "value")
        self._new_layer()
        super().__init__(
            [
                widgets.HBox([self.layer, self.order]),
                self.channel,
                row([self.grid, self.large, self.overlay]),
                self.caption,
            ]
        )

    def _new_layer(self, _change=None) -> None:
        """A new layer or order starts at its most active channel (or channel 0)."""
        view = self._view(None)
        if view is None:
            return
        with self.channel.hold_trait_notifications():
            self.channel.max = len(view.order) - 1
            self.channel.value = view.channel
        self._draw(view)

    def _show(self, _change=None) -> None:
        view = self._view(self.channel.value)
        if view is not None:
            self._draw(view)

    def _view(self, channel: int | None) -> cnn.FeatureView | None:
        try:
            return cnn.view_features(self.capture, self.layer.value, self.order.value, channel)
        except LabError as error:
            _say(self.caption, str(error), error=True)
            return None

    def _draw(self, view: cnn.FeatureView) -> None:
        pictures = cnn_render.draw_features(view)
        self.grid.value = png_bytes(pictures.grid)
        self.large.value = png_bytes(pictures.channel_image)
        self.overlay.value = png_bytes(pictures.overlay)
        _say(self.caption, view.caption)


class ChannelVisualizer(Keepable, widgets.VBox):
    """What does this channel want? The image forming step by step (on a button press: it
    takes seconds), beside the places in the photos where the channel fires hardest."""

    FIGURE_TOPIC = "cnn"
    FIGURES = {"picture": ("the image a channel wants", "featurevis")}

    def __init__(
        self,
        image: ImageSource | None = None,
        model: str = cnn.DEFAULT_MODEL,
        layer: str | None = None,
        channel: int = 0,
        *,
        steps: int = 256,
        size: int = 224,
        pretrained: bool = True,
    ):
        self.image = cnn.rgb_image(image) if image is not None else None
        self.model, self.pretrained = model, pretrained
        names = cnn.layer_names(model)
        self.layer = widgets.Dropdown(options=names, value=layer or names[0], description="layer")
        self.channel = widgets.BoundedIntText(channel, min=0, max=10**6, description="channel")
        self.direction = widgets.ToggleButtons(
            options=[("wants", "want"), ("hates", "hate")], value="want"
        )
        self.steps = widgets.IntSlider(steps, min=16, max=1024, step=16, description="steps")
        self.size = size
        self.start = widgets.Button(description="What does it want?", button_style="primary")
        self.picture = _picture("30%")
        self.examples = widgets.HBox()
        self.caption = widgets.HTML()
        self.start.on_click(lambda _button: self.run())
        for control in (self.layer, self.channel, self.direction):
            control.observe(self._show_examples, "value")
        self._show_examples()
        super().__init__(
            [
                widgets.HBox([self.layer, self.channel, self.direction]),
                widgets.HBox([self.steps, self.start]),
                row([self.picture, self.examples]),
                self.caption,
            ]
        )

    def _show_examples(self, _change=None) -> None:
        try:
            found = cnn.dataset_examples(
                self.model, self.layer.value, self.channel.value, self.image,
                direction=self.direction.value, pretrained=self.pretrained,
            )  # fmt: skip
        except LabError as error:
            _say(self.caption, str(error), error=True)
            return
        tiles = []
        for picture, label in cnn_visualize_render.example_tiles(found, side=96):
            tile = _picture("96px")
            tile.value = png_bytes(picture)
            tiles.append(widgets.VBox([tile, widgets.Label(label)]))
        self.examples.children = tiles
        _say(self.caption, "Press the button to see the image this channel wants.")

    def run(self) -> cnn.Visualization | None:
        """Optimise now, showing each frame as it comes; returns the last."""
        last = None
        try:
            for last in cnn.visualize_steps(
                self.model, self.layer.value, self.channel.value, steps=self.steps.value,
                size=self.size, direction=self.direction.value, pretrained=self.pretrained,
            ):  # fmt: skip
                self.picture.value = png_bytes(last.image)
                _say(self.caption, last.describe())
        except LabError as error:
            _say(self.caption, str(error), error=True)
        return last


class FilterGallery(Keepable, widgets.VBox):
    """The first layer's learned filters; pick one to see its numbers (R, G, B kernels)."""

    def __init__(self, model: str = cnn.DEFAULT_MODEL, *, pretrained: bool = True):
        try:
            self.filters = cnn.learned_filters(model, pretrained=pretrained)
        except LabError as error:
            unavailable(self, error)
            return
        count = len(self.filters.weights)
        self.index = widgets.IntSlider(0, min=0, max=count - 1, description="filter")
        self.grid = _picture("60%")
        self.numbers = widgets.Textarea(layout=widgets.Layout(width="38%", height="320px"))
        self.index.observe(self._show, "value")
        self._show()
        super().__init__([self.index, row([self.grid, self.numbers])])

    def _show(self, _change=None) -> None:
        self.grid.value = png_bytes(cnn_render.filter_picture(self.filters, self.index.value))
        self.numbers.value = format_kernel(cnn.rounded(self.filters.kernel(self.index.value)))


class EvidenceView(Keepable, widgets.VBox):
    """Grad-CAM for the top class or any class, over what the network saw."""

    def __init__(self, image: ImageSource, model: str = cnn.DEFAULT_MODEL):
        self.image = cnn.rgb_image(image)
        self.model = model
        names = cnn.categories(model)
        self.target = widgets.Combobox(
            options=[TOP_CLASS, *names], value=TOP_CLASS, description="class", ensure_option=True
        )
        self.picture = _picture("40%")
        self.text = widgets.HTML()
        self.target.observe(self._show, "value")
        self._show()
        super().__init__([self.target, row([self.picture, self.text])])

    def _show(self, _change=None) -> None:
        target = None if self.target.value in ("", TOP_CLASS) else self.target.value
        try:
            found = gradcam.grad_cam(self.image, self.model, target)
        except LabError as error:
            _say(self.text, str(error), error=True)
            return
        self.picture.value = png_bytes(cnn_render.draw_evidence(found))
        self.text.value = (
            f"<p><b>{html.escape(found.label)}</b> (probability {found.probability:.1%}), "
            f"from the feature maps of {found.layer}.</p><p><i>{html.escape(found.note)}</i></p>"
        )


def depth_table(image: ImageSource | None = None, top_k: int = 5) -> widgets.HTML:
    """The revolution of depth as a table; with a photo, each network's top-k beside it."""
    rows = cnn_depth.depth_table()
    found = cnn_depth.compare_models(image, top_k) if image is not None else None
    header = ["network", "year", "depth", "parameters", "GFLOPs", "ImageNet top-1"]
    if found is not None:
        header.append(f"top-{top_k} for this photo")
    body = []
    for row in rows:
        cells = [
            row.title,
            str(row.year or ""),
            str(row.depth),
            f"{row.parameters / 1e6:.1f} M",
            f"{row.gflops:.2f}",
            f"{row.top1:.1f} %",
        ]
        if found is not None:
            top = found.predictions.get(row.model)
            cells.append(
                ", ".join(f"{label} ({p:.0%})" for label, p in top)
                if top
                else "weights not on this machine"
            )
        body.append("".join(f"<td>{html.escape(c)}</td>" for c in cells))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in (found.notes.values() if found else ()))
    heads = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows_html = "".join(f"<tr>{cells}</tr>" for cells in body)
    return widgets.HTML(
        f"<table><tr>{heads}</tr>{rows_html}</table>" + (f"<ul>{notes}</ul>" if notes else "")
    )
