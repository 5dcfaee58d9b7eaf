"""Jupyter kernel explorer: a preset dropdown, an editable grid, padding / stride / display
controls, live output and a step-through of any output pixel; and a layer of several filters.

The same engine calls as the Gradio Convolution tab (vlmlab.kernels, vlmlab.kernels.render).
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np

from vlmlab.errors import LabError
from vlmlab.images import load_image, sample_images
from vlmlab.kernels import (
    PADDINGS,
    PRESETS,
    Convolution,
    cells_to_array,
    format_kernel,
    kernel_from_text,
    parse_kernel,
    preset_name,
    resize_kernel,
)
from vlmlab.kernels.layer import (
    LAYER_PRESET,
    apply_conv_layer,
    format_filters,
    parse_bias,
    parse_filters,
    preset_names,
)
from vlmlab.kernels.render import (
    DISPLAY_MODES,
    draw_layer_maps,
    draw_padded_matrix,
    render_kernel,
    render_step,
)
from vlmlab.pixels.render import format_number
from vlmlab.render import error_html, png_bytes
from .pixels import row
from .figures import Keepable
from .links import Linkable


def _source(image):
    """A small 2-D array stays a matrix; anything else is read as a photo (default: chelsea)."""
    if image is None:
        return sample_images()["chelsea"]
    if isinstance(image, np.ndarray) and image.ndim == 2:
        return image
    return load_image(image)


class KernelExplorer(Linkable, Keepable, widgets.VBox):
    """Edit a kernel (preset, grid or text) and watch it filter the image; step through a pixel.

    `image` is a photo (anything `load_image` reads) or a 2-D matrix such as
    `vlmlab.kernels.LECTURE_INPUT`, shown with its numbers.
    """

    # widget.link() and KernelExplorer.from_link(link): see widgets/links.py
    LINK_TAB = "convolution"
    LINK_INIT = {"padding": "padding", "stride": "stride", "flip": "flip", "display": "mode"}
    LINK_CONTROLS = {"kernel": "text", "padding": "padding", "stride": "stride", "grayscale": "grayscale", "flip": "flip", "normalise": "normalise", "display": "mode"}

    def __init__(
        self,
        image=None,
        kernel="sharpen",
        *,
        padding: str = "reflect",
        stride: int = 1,
        flip: bool = False,
        mode: str = "clip",
    ):
        self.image = _source(image)
        self.is_matrix = isinstance(self.image, np.ndarray)
        start = PRESETS[kernel] if isinstance(kernel, str) else parse_kernel(format_kernel(kernel))
        name = kernel if isinstance(kernel, str) else "custom"
        self.preset = widgets.Dropdown(
            options=["custom", *PRESETS], value=name, description="preset"
        )
        side = start.shape[-1]
        self.size = widgets.ToggleButtons(
            options=[3, 5, 7], value=side if side in (3, 5, 7) else None, description="grid"
        )
        self.grid = widgets.GridBox(layout=widgets.Layout(grid_gap="2px"))
        self.text = widgets.Textarea(
            format_kernel(start),
            rows=5,
            description="as text",
            continuous_update=False,
            layout=widgets.Layout(width="48em"),  # a 5×5 kernel's rows without wrapping
        )
        self.padding = widgets.ToggleButtons(
            options=list(PADDINGS), value=padding, description="padding"
        )
        self.stride = widgets.IntSlider(stride, 1, 8, description="stride", continuous_update=False)
        self.grayscale = widgets.Checkbox(False, description="grayscale first")
        self.flip = widgets.Checkbox(flip, description="flip 180° (convolution)")
        self.normalise = widgets.Checkbox(False, description="normalise by sum")
        self.mode = widgets.Dropdown(
            options=[(v, k) for k, v in DISPLAY_MODES.items()], value=mode, description="show as"
        )
        self.row = widgets.IntText(0, description="output row")
        self.col = widgets.IntText(0, description="output col")
        self.result = widgets.Image(format="png")
        self.matrix_view = widgets.Image(format="png")
        self.arithmetic = widgets.HTML()
        self.status = widgets.HTML()
        self.step = widgets.HTML()
        self._syncing = False
        self._fill_grid(start)
        self.preset.observe(self._on_preset, names="value")
        self.size.observe(self._on_size, names="value")
        self.text.observe(self._on_text, names="value")
        for control in (
            self.padding,
            self.stride,
            self.grayscale,
            self.flip,
            self.normalise,
            self.mode,
        ):
            control.observe(self.update, names="value")
        for control in (self.row, self.col):
            control.observe(self._show_step, names="value")
        editor = widgets.VBox([self.preset, self.size, self.grid, self.text, self.status])
        controls = widgets.VBox(
            [self.padding, self.stride, self.grayscale, self.flip, self.normalise, self.mode]
        )
        views = [self.result, self.arithmetic]
        super().__init__(
            [
                row([editor, controls]),
                row([widgets.VBox(views), self.matrix_view] if self.is_matrix else views),
                widgets.HBox([self.row, self.col]),
                self.step,
            ]
        )
        middle = not self.is_matrix
        self.update()
        if middle and self._output_shape:
            self.row.value, self.col.value = (n // 2 for n in self._output_shape)

    # The editor: grid, text and preset stay in step; the text is the truth.
    def _fill_grid(self, kernel: np.ndarray) -> None:
        block = kernel[0] if kernel.ndim == 3 else kernel  # a multi-channel kernel: edit as text
        cells = []
        for value in format_kernel(block).split():
            cell = widgets.Text(
                value,
                layout=widgets.Layout(width="64px"),
                continuous_update=False,
                disabled=kernel.ndim == 3,
            )
            cell.observe(self._on_cell, names="value")
            cells.append(cell)
        self.grid.layout.grid_template_columns = f"repeat({block.shape[-1]}, 64px)"
        self.grid.children = cells

    def _cells(self) -> list[list[str]]:
        k = round(len(self.grid.children) ** 0.5)
        values = [c.value for c in self.grid.children]
        return [values[i * k : (i + 1) * k] for i in range(k)]

    def _on_cell(self, _change) -> None:
        if self._syncing:
            return
        try:
            self._set_text(format_kernel(cells_to_array(self._cells())), refill=False)
        except LabError as error:
            self.status.value = error_html(error)

    def _on_preset(self, change) -> None:
        if not self._syncing and change["new"] in PRESETS:
            self._set_text(format_kernel(PRESETS[change["new"]]))

    def _on_size(self, change) -> None:
        if self._syncing:
            return
        try:
            self._set_text(
                format_kernel(resize_kernel(parse_kernel(self.text.value), change["new"]))
            )
        except LabError as error:
            self.status.value = error_html(error)

    def _on_text(self, _change) -> None:
        if not self._syncing:
            self._set_text(self.text.value)

    def _set_text(self, text: str, *, refill: bool = True) -> None:
        self._syncing = True
        try:
            self.text.value = text
            kernel = parse_kernel(text)
            if refill:
                self._fill_grid(kernel)
            self.preset.value = preset_name(kernel) or "custom"
            if kernel.shape[-1] in self.size.options:
                self.size.value = kernel.shape[-1]
        except LabError as error:
            self.status.value = error_html(error)
            return
        finally:
            self._syncing = False
        self.update()

    # The views
    def _settings(self) -> Convolution:
        """How the kernel slides (normalising is in `kernel()`); a matrix is never grayscaled."""
        grayscale = self.grayscale.value and not self.is_matrix
        return Convolution(self.padding.value, self.stride.value, grayscale, self.flip.value)

    def kernel(self) -> np.ndarray:
        """The kernel as applied (normalised when ticked)."""
        return kernel_from_text(self.text.value, normalise=self.normalise.value)

    def update(self, _change=None) -> None:
        """Re-apply the kernel and refresh every view."""
        self._output_shape = None
        try:
            view = render_kernel(self.image, self.kernel(), self._settings(), mode=self.mode.value)
        except LabError as error:
            self.status.value = error_html(error)
            return
        self._output_shape = view.values.shape[:2]
        self.result.value = png_bytes(view.image)
        self.arithmetic.value = f"<pre>{html.escape(view.arithmetic)}</pre>"
        self.status.value = ""
        self._show_step()

    def _show_step(self, _change=None) -> None:
        if self._output_shape is None:
            return
        try:
            kernel = self.kernel()
            step, table = render_step(
                self.image, kernel, self.row.value, self.col.value, self._settings()
            )
        except LabError as error:
            self.step.value = error_html(error)
            return
        self.step.value = table
        if (self.row.value, self.col.value) != (step.row, step.col):  # moved inside the output
            self.row.value, self.col.value = step.row, step.col
        if self.is_matrix:
            picture = draw_padded_matrix(self.image, kernel.shape[-1], self.padding.value, step)
            self.matrix_view.value = png_bytes(picture)


class ConvLayerExplorer(Keepable, widgets.VBox):
    """A convolutional layer: N filters (each C×k×k, separated by ---), biases, optional ReLU."""

    def __init__(self, image=None, filters: np.ndarray = LAYER_PRESET, bias=None):
        self.image = _source(image)
        n = len(filters)
        self.filters = widgets.Textarea(
            format_filters(filters),
            rows=14,
            description="filters",
            continuous_update=False,
            layout=widgets.Layout(width="40em"),
        )
        self.bias = widgets.Text(
            " ".join(format_number(b) for b in (bias if bias is not None else np.zeros(n))),
            description="biases",
            continuous_update=False,
        )
        self.padding = widgets.ToggleButtons(
            options=list(PADDINGS), value="reflect", description="padding"
        )
        self.stride = widgets.IntSlider(1, 1, 8, description="stride", continuous_update=False)
        self.relu = widgets.Checkbox(False, description="ReLU")
        self.maps = widgets.Image(format="png")
        self.shapes = widgets.HTML()
        for control in (self.filters, self.bias, self.padding, self.stride, self.relu):
            control.observe(self.update, names="value")
        super().__init__(
            [
                row([self.filters, widgets.VBox([self.bias, self.padding, self.stride, self.relu])]),
                self.shapes,
                self.maps,
            ]
        )
        self.update()

    def update(self, _change=None) -> None:
        try:
            filters = parse_filters(self.filters.value)
            bias = parse_bias(self.bias.value, len(filters))
            maps = apply_conv_layer(
                self.image,
                filters,
                bias,
                padding=self.padding.value,
                stride=self.stride.value,
                relu=self.relu.value,
            )
        except LabError as error:
            self.shapes.value = error_html(error)
            return
        self.maps.value = png_bytes(draw_layer_maps(maps, preset_names(filters)))
        self.shapes.value = (
            f"<p>weights {'×'.join(map(str, filters.shape))} → output "
            f"{'×'.join(map(str, maps.shape))} (one map per filter)</p>"
        )
