"""Jupyter pixel inspector: a region of the photo as numbers, the C×H×W tensor, colour spaces.

The same engine calls as the Gradio Pixels tab (vlmlab.pixels, vlmlab.pixels.render).
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from vlmlab.errors import LabError
from vlmlab.images import load_image, sample_images
from vlmlab.pixels import (
    COLOR_SPACES,
    MAX_REGION,
    convert_color_space,
    pick_region,
    pixel_in_color_spaces,
    read_pixel,
    shrink,
    tensor_facts,
)
from vlmlab.pixels.render import (
    PLANE_SIDE,
    color_table_html,
    draw_channel_planes,
    draw_color_planes,
    draw_region_box,
    draw_region_grids,
    tensor_facts_html,
)
from vlmlab.render import error_html, png_bytes
from .figures import Keepable
from .links import Linkable




def row(children, **layout) -> widgets.HBox:
    """Side by side, each at its own height. A plain HBox stretches its children to the tallest
    one, which draws an image out of proportion; here every image keeps its aspect ratio."""
    return widgets.HBox(children, layout=widgets.Layout(align_items="flex-start", **layout))


def unavailable(widget: widgets.Box, error: LabError) -> None:
    """A widget whose model cannot be had shows the sentence in its place (the notebook goes on)."""
    widgets.Box.__init__(widget, [widgets.HTML(error_html(error))])




class PixelInspector(Linkable, Keepable, widgets.VBox):
    """Pick a region with the sliders; read its pixels, the tensor layout and colour spaces."""

    # widget.link() and PixelInspector.from_link(link): see widgets/links.py
    LINK_TAB = "pixels"
    LINK_INIT = {}
    LINK_CONTROLS = {"top": "top", "left": "left", "size": "size", "space": "space"}

    def __init__(self, image=None, *, top: int = 130, left: int = 200, size: int = 10):
        self.image = load_image(image) if image is not None else sample_images()["chelsea"]
        height, width = self.image.height, self.image.width
        slider = {"continuous_update": False, "style": {"description_width": "90px"}}
        self.top = widgets.IntSlider(top, 0, height - 1, description="top row", **slider)
        self.left = widgets.IntSlider(left, 0, width - 1, description="left column", **slider)
        self.size = widgets.IntSlider(size, 2, MAX_REGION, description="region size", **slider)
        self.space = widgets.Dropdown(
            options=list(COLOR_SPACES)[1:], value="HSV", description="colour space"
        )
        self.preview = widgets.Image(format="png")
        self.grids = widgets.Image(format="png")
        self.facts = widgets.HTML()
        self.pixel_table = widgets.HTML()
        self.planes = widgets.Image(format="png", value=png_bytes(draw_channel_planes(self.image)))
        self.space_planes = widgets.Image(format="png")
        self.space_note = widgets.HTML()
        self.status = widgets.HTML()
        for control in (self.top, self.left, self.size):
            control.observe(self._show_region, names="value")
        self.space.observe(self._show_space, names="value")
        super().__init__(
            [
                row([widgets.VBox([self.preview, self.top, self.left, self.size]), self.grids]),
                self.status,
                widgets.HTML("<h4>A colour image is a tensor: channels × height × width</h4>"),
                row([self.planes, self.facts]),
                widgets.HTML("<h4>The same colours in other colour spaces</h4>"),
                self.space,
                self.space_planes,
                self.space_note,
                self.pixel_table,
            ]
        )
        self._show_region()
        self._show_space()

    def _show_region(self, _change=None) -> None:
        try:
            region = pick_region(self.image, self.top.value, self.left.value, self.size.value)
        except LabError as error:
            self.status.value = error_html(error)
            return
        h, w = region.size
        row, col = region.top + h // 2, region.left + w // 2
        self.preview.value = png_bytes(draw_region_box(self.image, region, max_side=360))
        self.grids.value = png_bytes(draw_region_grids(region, mark=(row, col), cell=30))
        self.facts.value = tensor_facts_html(tensor_facts(self.image, row, col))
        rgb = read_pixel(self.image, row, col).rgb
        self.pixel_table.value = (
            f"<p>Pixel (row {row}, column {col}) in every space:</p>"
            + color_table_html(pixel_in_color_spaces(rgb))
        )
        self.status.value = ""

    def _show_space(self, _change=None) -> None:
        view = convert_color_space(shrink(self.image, PLANE_SIDE), self.space.value)
        self.space_planes.value = png_bytes(draw_color_planes(view))
        self.space_note.value = (
            f"<p>Computed with {html.escape(view.library)}; black = low end, white = high end "
            "of each channel's range over all sRGB colours.</p>"
        )
