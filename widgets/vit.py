"""The ViT tab in Jupyter: why patches, a patch explorer and an attention browser.

Same engine calls as the Gradio tab (`vlmlab.vit`, `vlmlab.vit.render`); one forward per photo.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
from PIL import Image

from vlmlab import vit
from vlmlab.vit import cost as vit_cost
from vlmlab.errors import LabError
from vlmlab.images import ImageSource
from vlmlab.vit.render import (
    draw_attention_views,
    draw_patch_grid,
    draw_patch_steps,
    draw_position_similarity,
)
from vlmlab.render import error_html, png_bytes

from .pixels import row, unavailable
from .figures import Keepable
from .links import Linkable




def _picture(width: str | None = None) -> widgets.Image:
    return widgets.Image(format="png", layout=widgets.Layout(width=width) if width else None)




class WhyPatches(widgets.VBox):
    """Self-attention on pixels vs on patches: tokens, attention entries and fp32 memory."""

    def __init__(self, height: int = 224, width: int = 224, patch_size: int = 16):
        self.height = widgets.BoundedIntText(height, min=1, max=vit_cost.MAX_SIDE, description="H")
        self.width = widgets.BoundedIntText(width, min=1, max=vit_cost.MAX_SIDE, description="W")
        self.patch_size = widgets.BoundedIntText(
            patch_size, min=1, max=vit_cost.MAX_SIDE, description="p"
        )
        self.table = widgets.HTML()
        for control in (self.height, self.width, self.patch_size):
            control.observe(self._show, "value")
        self._show()
        super().__init__([widgets.HBox([self.height, self.width, self.patch_size]), self.table])

    def _show(self, _change=None) -> None:
        try:
            cost = vit_cost.patch_cost(self.height.value, self.width.value, self.patch_size.value)
        except LabError as error:
            self.table.value = error_html(error)
            return
        header, *rows = vit_cost.patch_cost_rows(cost)
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        words = html.escape(vit_cost.describe_patch_cost(cost))
        self.table.value = f"<table><tr>{cells}</tr>{body}</table><p>{words}</p>"


class PatchExplorer(Keepable, widgets.VBox):
    """The photo as the model sees it, in numbered patches; pick one to follow it to a token."""

    def __init__(self, image: ImageSource, model: str | None = None, patch: int = 1):
        try:
            self.inspection = vit.inspect_vit(image, model)
        except LabError as error:
            unavailable(self, error)
            return
        i = self.inspection
        self.summary = widgets.HTML(f"<p>{html.escape(vit.describe_model(i))}</p>")
        self.patch = widgets.BoundedIntText(patch, min=1, max=i.num_patches, description="patch")
        self.grid = _picture("40%")
        self.steps = _picture("58%")
        self.message = widgets.HTML()
        self.patch.observe(self._show, "value")
        self._show()
        super().__init__(
            [self.summary, self.patch, row([self.grid, self.steps]), self.message]
        )

    def _show(self, _change=None) -> None:
        try:
            grid = draw_patch_grid(self.inspection, self.patch.value)
            steps = draw_patch_steps(self.inspection, self.patch.value)
        except LabError as error:
            self.message.value = error_html(error)
            return
        self.grid.value, self.steps.value, self.message.value = png_bytes(grid), png_bytes(steps), ""


class AttentionBrowser(Linkable, Keepable, widgets.VBox):
    """Where a token attends: pick a layer, a head (or the mean) and a query (CLS or a patch)."""

    # widget.link() and AttentionBrowser.from_link(link): see widgets/links.py
    LINK_TAB = "vit"
    LINK_INIT = {"model": "model", "layer": "layer", "head": "head", "query": "query"}
    LINK_CONTROLS = {"layer": "layer", "head": "head", "query": "query"}

    def __init__(
        self,
        image: ImageSource,
        model: str | None = None,
        *,
        layer: int | None = None,
        head: str = vit.MEAN,
        query: str = vit.CLS,
    ):
        try:
            self.inspection = vit.inspect_vit(image, model)
        except LabError as error:
            unavailable(self, error)
            return
        i = self.inspection
        self.layer = widgets.IntSlider(
            layer or i.num_layers, min=1, max=i.num_layers, description="layer"
        )
        self.head = widgets.Dropdown(
            options=vit.head_choices(i),
            value=str(head),
            description="head",
        )
        self.query = widgets.Text(
            str(query),
            description="query",
            continuous_update=False,
            placeholder="CLS or a patch number",
        )
        self.heat_map = _picture("48%")
        self.rollout = _picture("48%")
        self.heads = _picture("98%")
        self.text = widgets.HTML()
        for control in (self.layer, self.head, self.query):
            control.observe(self._show, "value")
        self._show()
        super().__init__(
            [
                widgets.HBox([self.layer, self.head, self.query]),
                row([self.heat_map, self.rollout]),
                self.heads,
                self.text,
            ]
        )

    def _show(self, _change=None) -> None:
        try:
            views = draw_attention_views(
                self.inspection, self.layer.value, self.head.value, self.query.value
            )
        except LabError as error:
            self.text.value = error_html(error)
            return
        self.heat_map.value, self.rollout.value = png_bytes(views.heat_map), png_bytes(views.rollout)
        self.heads.value = png_bytes(views.heads)
        self.text.value = f"<p>{html.escape(views.text)}</p>"


def position_embeddings(image: ImageSource, model: str | None = None) -> Image.Image | widgets.HTML:
    """The ViT paper's position-embedding similarity figure for `model` (displays in Jupyter);
    the sentence instead when the model cannot be had."""
    try:
        inspection = vit.inspect_vit(image, model)
    except LabError as error:
        return widgets.HTML(error_html(error))
    if inspection.position_note:  # relative position biases (BEiT): no table to compare
        return widgets.HTML(f"<p>{html.escape(inspection.position_note)}</p>")
    return draw_position_similarity(inspection)


def predictions(
    image: ImageSource, model: str | None = None
) -> list[tuple[str, float]] | widgets.HTML:
    """The classifier's top-5 (empty, with a note printed, for models without a head); the
    sentence in a widget when the model cannot be had."""
    try:
        inspection = vit.inspect_vit(image, model)
    except LabError as error:
        return widgets.HTML(error_html(error))
    for note in inspection.notes:
        print(note)
    return list(inspection.predictions)
